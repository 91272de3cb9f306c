/*
 * Blocking against non-blocking allreduce on this machine's MPI: what an
 * overlapped data-parallel step pays on a host-progressed device
 * (docs/models.md §6, "Who moves the data"). Per size, the fastest of 7
 * repeats of
 *   - MPI_Allreduce (the tuned component's choice, or the algorithm forced
 *     with OMPI_MCA_coll_tuned_*),
 *   - MPI_Iallreduce then MPI_Wait (OpenMPI's libnbc schedule),
 *   - MPI_Iallreduce then MPI_Test until done (how the executor's
 *     MPI_Testall calls between layers progress it),
 * and the ratio of the second to the first. One line per size.
 *
 *   mpirun -np 2 build/bench/dnnsim_bench_nbc [MiB ...]
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#define REPEATS 7

static double best(double a, double b) {
  return a < b ? a : b;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  static const double dflt[] = {1, 4, 16, 25};
  int n = argc > 1 ? argc - 1 : 4;
  if (rank == 0)
    printf("# %d ranks; fastest of %d; sizes in MiB\n", size, REPEATS);
  for (int s = 0; s < n; s++) {
    double mib = argc > 1 ? atof(argv[s + 1]) : dflt[s];
    size_t count = (size_t)(mib * 1024 * 1024 / sizeof(float));
    if (!(mib > 0) || count == 0 || count > 1u << 30) {
      if (rank == 0)
        fprintf(stderr, "dnnsim_bench_nbc: bad size '%s' (MiB)\n", argv[s + 1]);
      MPI_Finalize();
      return 2;
    }
    float *buf = calloc(count, sizeof *buf);
    if (buf == NULL) {
      fprintf(stderr, "dnnsim_bench_nbc: out of memory\n");
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    double tb = 1e30, tw = 1e30, tt = 1e30;
    for (int k = 0; k < REPEATS; k++) {
      MPI_Request q;
      int done = 0;
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM,
                    MPI_COMM_WORLD);
      tb = best(tb, MPI_Wtime() - t0);
      MPI_Barrier(MPI_COMM_WORLD);
      t0 = MPI_Wtime();
      MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM,
                     MPI_COMM_WORLD, &q);
      MPI_Wait(&q, MPI_STATUS_IGNORE);
      tw = best(tw, MPI_Wtime() - t0);
      MPI_Barrier(MPI_COMM_WORLD);
      t0 = MPI_Wtime();
      MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM,
                     MPI_COMM_WORLD, &q);
      while (!done)
        MPI_Test(&q, &done, MPI_STATUS_IGNORE);
      tt = best(tt, MPI_Wtime() - t0);
    }
    if (rank == 0)
      printf("%6.1f MiB  blocking %8.3f ms  iallreduce+wait %8.3f ms  "
             "iallreduce+test %8.3f ms  ratio %.2f\n",
             mib, tb * 1e3, tw * 1e3, tt * 1e3, tw / tb);
    free(buf);
  }
  MPI_Finalize();
  return 0;
}
