# pipelines/common.mk - shared by the pipeline Makefiles: where the tools
# and scripts are. The tools are the repository's bin/ (build them with
# `make` at the top); BIN=DIR uses another build, e.g. an installed one.
PIPE := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
ROOT := $(abspath $(PIPE)/..)
BIN ?= $(ROOT)/bin
export DLT_BIN := $(BIN)
export PATH := $(BIN):$(PATH)
SHELL := /bin/bash
TRAIN_SH := $(PIPE)/train.sh
CURVE := $(PIPE)/plots/curve.sh
BOXES := $(PIPE)/plots/boxes.sh
# A failed recipe leaves no half-made target behind.
.DELETE_ON_ERROR:

.DEFAULT_GOAL := all

# Order-only prerequisite of the first steps: the tools exist.
.PHONY: tools-check
tools-check:
	@for t in $(NEED_TOOLS); do [ -x "$(BIN)/$$t" ] || { \
	  echo "pipelines: error: $(BIN)/$$t is missing; build the tools first (make -C $(ROOT))" >&2; exit 1; }; done

# $(call ids,FIRST,COUNT): zero-padded subject numbers FIRST..FIRST+COUNT-1
ids = $(shell seq -f %04g $(1) $$(($(1) + $(2) - 1)))

# $(call mean_table,DICE.tsv): the per-organ mean Dice rows of a dlt-dice
# --summary table, aligned
mean_table = awk -F'\t' '$$1 == "mean" { printf "  %-26s %s\n", ($$2 == "fg" ? "mean (foreground)" : $$3), $$4 }' $(1)
