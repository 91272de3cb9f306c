#!/bin/sh
# The split search under MPI ranks as one process does (cmd_search.c,
# search.h dnn_search_merge): the CSV ranking of 2 ranks equals that of 1,
# and the table reports the 2 processes.
#   search_mpi.sh DNNSIM MPIEXEC SOURCE_DIR
set -eu
DNNSIM=$1
MPIEXEC=$2
cd "$3"
ARGS="search scenarios/gpt-3.6b-a100.ini --devices 32 --top 8 --finalists 3"
one=$("$DNNSIM" $ARGS -f csv)
two=$("$MPIEXEC" --allow-run-as-root --oversubscribe -np 2 "$DNNSIM" $ARGS \
      -f csv)
if [ "$one" != "$two" ]; then
  echo "search_mpi: 2 ranks rank differently from 1"
  echo "--- 1 process:"; echo "$one"
  echo "--- 2 processes:"; echo "$two"
  exit 1
fi
table=$("$MPIEXEC" --allow-run-as-root --oversubscribe -np 2 "$DNNSIM" $ARGS)
case "$table" in
  *"2 processes)"*) ;;
  *) echo "search_mpi: the table does not report 2 processes"; echo "$table"
     exit 1 ;;
esac
echo "search_mpi: 2 ranks agree with 1"
