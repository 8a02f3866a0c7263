// SPDX-License-Identifier: GPL-2.0
/* Provokes a genuine ftrace_bug() for the kernel-log decoder's live test. Load it only in the test guest. */
#include <linux/module.h>
#include <linux/kprobes.h>
#include <linux/ftrace.h>
#include <linux/mutex.h>

typedef unsigned long (*lookup_fn)(const char *name);
typedef void *(*text_poke_fn)(void *addr, const void *opcode, size_t len);
typedef unsigned long (*ftrace_location_fn)(unsigned long ip);

noinline int unitrace_victim(int x)
{
	return x * 3 + 1;
}
EXPORT_SYMBOL_GPL(unitrace_victim);

static int __init ut_init(void)
{
	/* a valid 5-byte NOP, but not the one ftrace wrote: ftrace will find unexpected bytes */
	static const unsigned char other_nop[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x08 };
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };
	lookup_fn lookup;
	text_poke_fn poke;
	struct mutex *text_mutex_p;
	unsigned long ip;

	if (register_kprobe(&kp) < 0)
		return -ENOENT;
	lookup = (lookup_fn)kp.addr;
	unregister_kprobe(&kp);
	poke = (text_poke_fn)lookup("text_poke");
	text_mutex_p = (struct mutex *)lookup("text_mutex");
	{
		ftrace_location_fn loc = (ftrace_location_fn)lookup("ftrace_location");

		ip = loc ? loc((unsigned long)unitrace_victim) : 0;
	}
	if (!poke || !text_mutex_p || !ip)
		return -ENOENT;
	mutex_lock(text_mutex_p);
	poke((void *)ip, other_nop, sizeof(other_nop));
	mutex_unlock(text_mutex_p);
	pr_info("ut_ftrace_bug: rewrote the ftrace site of %pS\n", (void *)ip);
	return 0;
}

static void __exit ut_exit(void)
{
}

module_init(ut_init);
module_exit(ut_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("unitrace test: provoke ftrace_bug() on demand");
