# libFuzzer harnesses (issue 11), included from Makefile.am. They are built only in
# a build configured with CC=clang ./configure --enable-fuzzing; `make fuzz` runs
# each one for FUZZ_SECONDS, starting from its seed corpus tests/fuzz/corpus/NAME
# (new inputs go to tests/fuzz/work/NAME in the build directory, crashes to
# tests/fuzz/work/NAME-crash-*). tests/fuzz/README.md has the details and results.
fuzz_names = qs schema task_body qrs_filter udp base62 fspath cfg engine cron tmpl import
fuzz_harnesses = tests/fuzz/fuzz_qs tests/fuzz/fuzz_schema tests/fuzz/fuzz_task_body \
	tests/fuzz/fuzz_qrs_filter tests/fuzz/fuzz_udp tests/fuzz/fuzz_base62 \
	tests/fuzz/fuzz_fspath tests/fuzz/fuzz_cfg tests/fuzz/fuzz_engine tests/fuzz/fuzz_cron \
	tests/fuzz/fuzz_tmpl tests/fuzz/fuzz_import
FUZZ_SECONDS = 10
FUZZ_FLAGS =
fuzzer_link = -fsanitize=fuzzer
if FUZZING
noinst_PROGRAMS = $(fuzz_harnesses)
endif
EXTRA_PROGRAMS = $(fuzz_harnesses)
tests_fuzz_fuzz_qs_SOURCES = tests/fuzz/fuzz_qs.c tests/fuzz/fuzz.h
tests_fuzz_fuzz_qs_LDADD = src/libbutlerd.a $(BUTLERD_LIBS)
tests_fuzz_fuzz_qs_LDFLAGS = $(fuzzer_link)
tests_fuzz_fuzz_schema_SOURCES = tests/fuzz/fuzz_schema.c tests/fuzz/fuzz.h
tests_fuzz_fuzz_schema_LDADD = src/libbutlerd.a $(BUTLERD_LIBS)
tests_fuzz_fuzz_schema_LDFLAGS = $(fuzzer_link)
tests_fuzz_fuzz_task_body_SOURCES = tests/fuzz/fuzz_task_body.c tests/fuzz/fuzz.h
tests_fuzz_fuzz_task_body_LDADD = src/libbutlerd.a $(BUTLERD_LIBS)
tests_fuzz_fuzz_task_body_LDFLAGS = $(fuzzer_link)
tests_fuzz_fuzz_qrs_filter_SOURCES = tests/fuzz/fuzz_qrs_filter.c tests/fuzz/fuzz.h
tests_fuzz_fuzz_qrs_filter_LDADD = src/libbutlerd.a $(BUTLERD_LIBS)
tests_fuzz_fuzz_qrs_filter_LDFLAGS = $(fuzzer_link)
tests_fuzz_fuzz_udp_SOURCES = tests/fuzz/fuzz_udp.c tests/fuzz/fuzz.h
tests_fuzz_fuzz_udp_LDADD = src/libbutlerd.a $(BUTLERD_LIBS)
tests_fuzz_fuzz_udp_LDFLAGS = $(fuzzer_link)
tests_fuzz_fuzz_base62_SOURCES = tests/fuzz/fuzz_base62.c tests/fuzz/fuzz.h
tests_fuzz_fuzz_base62_LDADD = src/libbutlerd.a $(BUTLERD_LIBS)
tests_fuzz_fuzz_base62_LDFLAGS = $(fuzzer_link)
tests_fuzz_fuzz_fspath_SOURCES = tests/fuzz/fuzz_fspath.c tests/fuzz/fuzz.h
tests_fuzz_fuzz_fspath_LDADD = src/libbutlerd.a $(BUTLERD_LIBS)
tests_fuzz_fuzz_fspath_LDFLAGS = $(fuzzer_link)
tests_fuzz_fuzz_cfg_SOURCES = tests/fuzz/fuzz_cfg.c tests/fuzz/fuzz.h
tests_fuzz_fuzz_cfg_LDADD = src/libbutlerd.a $(BUTLERD_LIBS)
tests_fuzz_fuzz_cfg_LDFLAGS = $(fuzzer_link)
tests_fuzz_fuzz_engine_SOURCES = tests/fuzz/fuzz_engine.c tests/fuzz/fuzz.h
tests_fuzz_fuzz_engine_LDADD = src/libbutlerd.a $(BUTLERD_LIBS)
tests_fuzz_fuzz_engine_LDFLAGS = $(fuzzer_link)
tests_fuzz_fuzz_cron_SOURCES = tests/fuzz/fuzz_cron.c tests/fuzz/fuzz.h
tests_fuzz_fuzz_cron_LDADD = src/libbutlerd.a $(BUTLERD_LIBS)
tests_fuzz_fuzz_cron_LDFLAGS = $(fuzzer_link)
tests_fuzz_fuzz_tmpl_SOURCES = tests/fuzz/fuzz_tmpl.c tests/fuzz/fuzz.h
tests_fuzz_fuzz_tmpl_LDADD = src/libbutlerd.a $(BUTLERD_LIBS)
tests_fuzz_fuzz_tmpl_LDFLAGS = $(fuzzer_link)
# butlerd-import's code without its main() and without the butlerd -t check
tests_fuzz_fuzz_import_SOURCES = tests/fuzz/fuzz_import.c tests/fuzz/fuzz.h \
	src/import/imp_yaml.c src/import/imp_comment.c src/import/imp_keys.c src/import/imp_emit.c \
	src/import/imp_report.c src/import/imp_diff.c src/import/imp_butlerd.c src/import/imp_cron.c \
	src/import/imp_sched.c
tests_fuzz_fuzz_import_CPPFLAGS = $(AM_CPPFLAGS) -I$(srcdir)/src/import
tests_fuzz_fuzz_import_CFLAGS = $(AM_CFLAGS) $(YAML_CFLAGS)
tests_fuzz_fuzz_import_LDADD = src/libbutlerd.a $(YAML_LIBS) $(BUTLERD_LIBS)
tests_fuzz_fuzz_import_LDFLAGS = $(fuzzer_link)
EXTRA_DIST += tests/fuzz

if FUZZING
# Each harness for FUZZ_SECONDS; every seed runs first. Fails if any harness found
# a crash, a leak or a timeout, and shows the end of its log.
fuzz: $(fuzz_harnesses)
	@rc=0; for n in $(fuzz_names); do \
	  w=tests/fuzz/work/$$n; mkdir -p $$w; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
	  if ! LSAN_OPTIONS=suppressions=$(abs_srcdir)/tests/fuzz/lsan.supp$${LSAN_OPTIONS:+:$$LSAN_OPTIONS} \
	      ./tests/fuzz/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	      -artifact_prefix=$$w- `cat $(srcdir)/tests/fuzz/$$n.options 2>/dev/null` \
	      $(FUZZ_FLAGS) $$w $(srcdir)/tests/fuzz/corpus/$$n >$$w.log 2>&1; then \
	    rc=1; echo "fuzz: $$n FAILED, end of $$w.log:"; tail -n 60 $$w.log; \
	  fi; \
	  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' $$w.log | tr '\n' ' '; echo; \
	done; exit $$rc
# Only the seeds (crash inputs kept as regression seeds included), no fuzzing.
fuzz-regress: $(fuzz_harnesses)
	@rc=0; for n in $(fuzz_names); do \
	  LSAN_OPTIONS=suppressions=$(abs_srcdir)/tests/fuzz/lsan.supp ./tests/fuzz/fuzz_$$n -runs=0 `cat $(srcdir)/tests/fuzz/$$n.options 2>/dev/null` \
	      $(srcdir)/tests/fuzz/corpus/$$n >tests/fuzz/$$n-regress.log 2>&1 \
	    && echo "fuzz-regress: $$n ok" \
	    || { rc=1; echo "fuzz-regress: $$n FAILED"; tail -n 60 tests/fuzz/$$n-regress.log; }; \
	done; exit $$rc
else
fuzz fuzz-regress:
	@echo "make $@ needs a build configured with: CC=clang ./configure --enable-fuzzing" >&2; exit 1
endif
.PHONY: fuzz fuzz-regress
clean-local: clean-fuzz
clean-fuzz:
	-rm -rf tests/fuzz/work tests/fuzz/*-regress.log
.PHONY: clean-fuzz
