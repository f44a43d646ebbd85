// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A QEMU TCG plugin (plugin API version 1, QEMU 7.2 as in Debian 12) that
 * counts the instructions the guest executes, per translation block start
 * address. Each time the block at trigger=ADDR runs (e.g. __x64_sys_syncfs,
 * which a guest syncfs(2) enters), it appends a snapshot of the counts since
 * the last one to out=FILE, so the guest marks the phases to compare. Exact and
 * deterministic: no sampling.
 *
 * The API's declarations are repeated here because Debian ships no
 * qemu-plugin.h; they are those of QEMU 7.2's include/qemu/qemu-plugin.h.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int, void *);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t, void *);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, qemu_plugin_vcpu_tb_trans_cb_t);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *, qemu_plugin_vcpu_udata_cb_t,
					  enum qemu_plugin_cb_flags, void *);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, enum qemu_plugin_op,
					      void *, uint64_t);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, qemu_plugin_udata_cb_t, void *);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* one per translation; a block translated again gets another, summed on output */
struct block {
	uint64_t vaddr, insns, runs, reported;
};

static struct block **blocks;
static size_t nblocks, capacity;
static uint64_t trigger;
static FILE *out;
static int snapshot;

static void write_snapshot(unsigned int vcpu, void *udata)
{
	fprintf(out, "snapshot %d\n", snapshot++);
	for (size_t i = 0; i < nblocks; i++) {
		struct block *b = blocks[i];

		if (b->runs != b->reported) {
			fprintf(out, "%" PRIx64 " %" PRIu64 "\n", b->vaddr, (b->runs - b->reported) * b->insns);
			b->reported = b->runs;
		}
	}
	fflush(out);
}

static void translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	struct block *b = calloc(1, sizeof(*b));

	if (!b)
		abort();
	b->vaddr = qemu_plugin_tb_vaddr(tb);
	b->insns = qemu_plugin_tb_n_insns(tb);
	if (nblocks == capacity) {
		capacity = capacity ? capacity * 2 : 65536;
		blocks = realloc(blocks, capacity * sizeof(*blocks));
		if (!blocks)
			abort();
	}
	blocks[nblocks++] = b;
	/* single-threaded TCG (icount): a plain add is exact */
	qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->runs, 1);
	if (b->vaddr == trigger)
		qemu_plugin_register_vcpu_tb_exec_cb(tb, write_snapshot, QEMU_PLUGIN_CB_NO_REGS, NULL);
}

static void at_exit(qemu_plugin_id_t id, void *udata)
{
	write_snapshot(0, NULL);
	fclose(out);
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
	const char *path = NULL;

	for (int i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "trigger=", 8))
			trigger = strtoull(argv[i] + 8, NULL, 16);
		else if (!strncmp(argv[i], "out=", 4))
			path = argv[i] + 4;
	}
	if (!path || !trigger) {
		fprintf(stderr, "insncount: needs trigger=ADDR and out=FILE\n");
		return -1;
	}
	out = fopen(path, "w");
	if (!out) {
		perror(path);
		return -1;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, translated);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
