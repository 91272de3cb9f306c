/* Tests of core/: status names, error records, allocator hook, arena,
 * atomic files and name suggestions. */
#include "test_util.h"

#include <string.h>
#include <unistd.h>

#include "core/internal.h"

static void test_status_names(void **state) {
  (void)state;
  assert_string_equal(dnn_status_name(DNN_OK), "OK");
  assert_string_equal(dnn_status_name(DNN_EPARSE), "EPARSE");
  assert_string_equal(dnn_status_name((dnn_status)999), "UNKNOWN");
  assert_string_equal(dnn_strerror(DNN_ENOMEM), "out of memory");
  for (int i = 0; i < DNN_STATUS_COUNT_; i++)
    assert_true(strlen(dnn_strerror((dnn_status)i)) > 3);
}

static void test_fail_records(void **state) {
  (void)state;
  dnn_error e;
  dnn_error_clear(&e);
  dnn_status st = DNN_FAIL(&e, DNN_ERANGE, "x.ini:%d: bad\nvalue %d", 7, 42);
  assert_int_equal(st, DNN_ERANGE);
  assert_int_equal(e.code, DNN_ERANGE);
  assert_string_equal(e.msg, "x.ini:7: bad value 42");
  assert_non_null(e.src_file);
  assert_true(e.src_line > 0);
  dnn_error_prefix(&e, "while loading %s", "s.ini");
  assert_string_equal(e.msg, "while loading s.ini: x.ini:7: bad value 42");
  assert_int_equal(DNN_FAIL(NULL, DNN_EIO, "ignored"), DNN_EIO);
}

static void test_alloc_injection(void **state) {
  (void)state;
  test_alloc_state s;
  test_alloc_install(&s, 1);
  void *a = dnn_malloc(10);
  void *b = dnn_malloc(10);
  assert_non_null(a);
  assert_null(b);
  dnn_free(a);
  test_alloc_restore();
  assert_null(dnn_calloc(SIZE_MAX / 2, 4)); /* overflow caught */
}

static void test_arena(void **state) {
  (void)state;
  dnn__arena a;
  dnn__arena_init(&a, 64);
  char *s = dnn__arena_strdup(&a, "conv1");
  int *big = dnn__arena_alloc(&a, 1000 * sizeof(int));
  assert_non_null(s);
  assert_non_null(big);
  assert_string_equal(s, "conv1");
  for (int i = 0; i < 1000; i++)
    assert_int_equal(big[i], 0);
  assert_int_equal((uintptr_t)big % sizeof(double), 0);
  dnn__arena_release(&a);
}

static void test_buf(void **state) {
  (void)state;
  dnn__buf b;
  dnn__buf_init(&b);
  for (int i = 0; i < 100; i++)
    dnn__buf_appendf(&b, "%d,", i);
  assert_int_equal(b.len, strlen(b.data));
  assert_true(strncmp(b.data, "0,1,2,", 6) == 0);
  dnn__buf_free(&b);
}

static void test_atomic_file(void **state) {
  (void)state;
  char path[] = "/tmp/dnnsim-test-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  dnn_error e;
  assert_ok(dnn_file_write_atomic(path, "old", 3, &e), &e);
  /* An aborted write leaves the old content. */
  dnn_outfile *f;
  assert_ok(dnn_outfile_open(path, &f, &e), &e);
  fputs("half-written", dnn_outfile_stream(f));
  dnn_outfile_abort(f);
  char *text;
  size_t len;
  assert_ok(dnn_file_read_all(path, &text, &len, &e), &e);
  assert_string_equal(text, "old");
  dnn_free(text);
  assert_ok(dnn_outfile_open(path, &f, &e), &e);
  fputs("new", dnn_outfile_stream(f));
  assert_ok(dnn_outfile_commit(f, &e), &e);
  assert_ok(dnn_file_read_all(path, &text, &len, &e), &e);
  assert_string_equal(text, "new");
  dnn_free(text);
  remove(path);
  assert_int_equal(dnn_file_read_all("/nonexistent/x", &text, &len, &e),
                   DNN_EIO);
  assert_contains(e.msg, "/nonexistent/x");
  assert_int_equal(dnn_outfile_open("/nonexistent/dir/x", &f, &e), DNN_EIO);
}

static void test_nearest(void **state) {
  (void)state;
  const char *names[] = {"data", "tensor", "pipeline", "microbatches", NULL};
  assert_string_equal(dnn_nearest_name("dta", names), "data");
  assert_string_equal(dnn_nearest_name("microbatch", names), "microbatches");
  assert_null(dnn_nearest_name("zzzzzzzz", names));
  assert_int_equal(dnn_edit_distance("kitten", "sitting"), 3);
}

static void test_close_and_logs(void **state) {
  (void)state;
  assert_true(dnn_close(0.0, 0.0, 1e-12));
  assert_true(dnn_close(1.0, 1.0 + 1e-13, 1e-12));
  assert_false(dnn_close(1.0, 1.001, 1e-4));
  assert_false(dnn_close(0.0, 1e-300, 1e-3));
  assert_true(dnn_close(__builtin_inf(), __builtin_inf(), 0.1));
  assert_false(dnn_close(__builtin_inf(), -__builtin_inf(), 0.1));
  assert_true(dnn_close(__builtin_nan(""), __builtin_nan(""), 0.1));
  assert_int_equal(dnn__ceil_log2(1), 0);
  assert_int_equal(dnn__ceil_log2(5), 3);
  assert_int_equal(dnn__ceil_log2(8), 3);
  assert_int_equal(dnn__floor_log2(7), 2);
  assert_true(dnn__is_pow2(64));
  assert_false(dnn__is_pow2(96));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_status_names),
      cmocka_unit_test(test_fail_records),
      cmocka_unit_test(test_alloc_injection),
      cmocka_unit_test(test_arena),
      cmocka_unit_test(test_buf),
      cmocka_unit_test(test_atomic_file),
      cmocka_unit_test(test_nearest),
      cmocka_unit_test(test_close_and_logs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
