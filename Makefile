# anomaly: unsupervised anomaly detection inside PostgreSQL (PGXS build)

EXTENSION = anomaly
EXTVERSION = 0.2.0

MODULE_big = anomaly
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c src/kinds/*.c))
HEADERS = $(wildcard src/*.h)

DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
# earlier versions' install scripts are kept as released, beside the upgrade scripts
DATA = $(wildcard sql/$(EXTENSION)--*--*.sql) sql/$(EXTENSION)--0.1.0.sql

# Regression tests: inputs in sql/, expected output in expected/ (the install
# script shares sql/, so the list is explicit).
REGRESS = $(sort $(patsubst sql/%.sql,%,$(filter-out sql/$(EXTENSION)%.sql,$(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)

TAP_TESTS = 1
PROVE_TESTS = $(wildcard test/t/*.pl)

PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Wno-cast-function-type
PG_CPPFLAGS = -I$(srcdir)/src
# OpenBLAS is opened on first use (src/blas.h), not linked
SHLIB_LINK += -lm
# nn.c is elementwise loops (activations, Adam): let them vectorize (sqrtf
# without errno, branch-free compares, the full cost model).  No
# reassociation or contraction: results stay bit-identical to scalar code.
src/nn.o: CFLAGS += -fno-math-errno -fno-trapping-math -fvect-cost-model=dynamic
# simd.c and simd_nn.c: vector kernels in a baseline and an AVX2 version.
# simd.c must round like the scalar code (no fused multiply-add), simd_nn.c
# fuses them (see the notes at their tops).  Their static helpers pass
# vectors by value, which -Wpsabi would flag for the baseline.
src/simd.o: CFLAGS += -ffp-contract=off -Wno-psabi
src/simd.bc: BITCODE_CFLAGS += -ffp-contract=off -Wno-psabi
src/simd_nn.o: CFLAGS += -ffp-contract=fast -Wno-psabi
src/simd_nn.bc: BITCODE_CFLAGS += -ffp-contract=fast -Wno-psabi
EXTRA_CLEAN = sql/$(EXTENSION)--$(EXTVERSION).sql

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/$(EXTENSION).sql
	cp $< $@

# rebuild every object when a header changes (PGXS tracks no header dependencies)
$(OBJS): $(wildcard src/*.h)
