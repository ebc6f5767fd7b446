/**
 * The seccomp filter bwrap loads (`--seccomp FD`) before it runs the sandboxed program: no new
 * user namespaces. A user namespace hands the program a full set of capabilities over namespaces
 * it creates, and with them kernel code (netfilter, mounts of new filesystems) that an ordinary
 * uid never reaches. clone3 passes its flags in memory a filter cannot read, so it fails with
 * ENOSYS, on which glibc falls back to clone. Syscalls of another ABI (32-bit, x32) end the process.
 */
export function noUserNamespacesFilter(arch: string = process.arch): Buffer {
  const abi = ABIS[arch];
  if (!abi) throw new Error(`no seccomp filter for architecture ${arch}`);
  const program: Instruction[] = [
    [LD_W_ABS, 0, 0, ARCH_OFFSET],
    [JEQ, 1, 0, abi.auditArch],
    [RET, 0, 0, SECCOMP_RET_KILL_PROCESS],
    [LD_W_ABS, 0, 0, NR_OFFSET],
    // x32 syscalls are the x86_64 numbers with this bit set; no other ABI has numbers that high.
    [JGE, 0, 1, X32_SYSCALL_BIT],
    [RET, 0, 0, SECCOMP_RET_KILL_PROCESS],
    [JEQ, 0, 1, abi.clone3],
    [RET, 0, 0, SECCOMP_RET_ERRNO | ENOSYS],
    [JEQ, 1, 0, abi.unshare],
    [JEQ, 0, 3, abi.clone],
    // Both take their flags as the first argument; CLONE_NEWUSER is in its low 32 bits.
    [LD_W_ABS, 0, 0, ARG0_LOW_OFFSET],
    [JSET, 0, 1, CLONE_NEWUSER],
    [RET, 0, 0, SECCOMP_RET_ERRNO | EPERM],
    [RET, 0, 0, SECCOMP_RET_ALLOW],
  ];
  const out = Buffer.alloc(program.length * 8);
  program.forEach(([code, jt, jf, k], i) => {
    out.writeUInt16LE(code, i * 8);
    out.writeUInt8(jt, i * 8 + 2);
    out.writeUInt8(jf, i * 8 + 3);
    out.writeUInt32LE(k >>> 0, i * 8 + 4);
  });
  return out;
}

/** struct sock_filter: opcode, jump if true, jump if false, operand. */
type Instruction = [code: number, jt: number, jf: number, k: number];

// linux/filter.h and linux/seccomp.h.
const LD_W_ABS = 0x20;
const JEQ = 0x15;
const JGE = 0x35;
const JSET = 0x45;
const RET = 0x06;
const SECCOMP_RET_KILL_PROCESS = 0x80000000;
const SECCOMP_RET_ERRNO = 0x00050000;
const SECCOMP_RET_ALLOW = 0x7fff0000;
// struct seccomp_data, little-endian.
const NR_OFFSET = 0;
const ARCH_OFFSET = 4;
const ARG0_LOW_OFFSET = 16;
const X32_SYSCALL_BIT = 0x40000000;
const CLONE_NEWUSER = 0x10000000;
const EPERM = 1;
const ENOSYS = 38;

/** Syscall numbers from the kernel's syscall tables; the audit arch from linux/audit.h. */
const ABIS: Record<string, { auditArch: number; clone: number; unshare: number; clone3: number }> = {
  x64: { auditArch: 0xc000003e, clone: 56, unshare: 272, clone3: 435 },
  arm64: { auditArch: 0xc00000b7, clone: 220, unshare: 97, clone3: 435 },
};
