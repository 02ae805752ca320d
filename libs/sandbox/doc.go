// Package sandbox isolates the processes of one CI job: pipeline code from
// pull requests and forks that the runner must not trust. docs/security.md
// has the threat model and which layer stops which attack.
//
// # Layers
//
// [New] sets up every layer the machine allows, detects (never assumes)
// which ones work by running a probe command through the sandbox, and
// reports them in [Sandbox.Layers], whose String is the run's first log
// line:
//
//	isolation: cgroup=v1+v2 memory,pids,cpu,freezer; namespaces=user,mount,pid,net,ipc,uts,cgroup; user=uid 64001; fs=bubblewrap; no_new_privs; caps=none; kill=cgroup.kill,cgroup,uid,pid namespace,process groups
//
// The layers:
//
//   - Cgroups (containerd's cgroups library), one group per job under the
//     runner's own cgroup + "simpleci": on cgroup v1 the memory (memory
//     and memory+swap), pids and cpu (CFS quota) controllers and the
//     freezer; on v2 memory.max (no swap), pids.max, cpu.max and
//     cgroup.kill; on hybrid machines (v1 controllers, an empty v2
//     hierarchy) both: v1 for the limits, v2 to track and kill.
//   - A user of its own: a uid (and gid) from [UIDBase] on that no account
//     and no process has, locked for the sandbox's life; no supplementary
//     groups; no capabilities (an unprivileged uid has none). Needs a root
//     runner.
//   - no_new_privs on every process of the job (set on the launcher
//     thread, so without any helper program).
//   - Namespaces: network, IPC and UTS made once per job by the runner, so
//     that every command of the job shares them; user, mount, PID and
//     cgroup namespaces and a
//     minimal filesystem view through bubblewrap (read-only /usr, /etc and
//     the merged-/usr links, a small /dev, a fresh /proc, the workspace,
//     HOME and a private /tmp writable, nothing else of the host).
//   - The network: every job has a network namespace of its own, with
//     loopback only, or with [Options.Network] a way out through a
//     per-job slirp4netns (network.go) on which the host's own addresses,
//     [DeniedRanges] and [Options.DenyNetworks] are prohibit routes. A job
//     without network is refused when no namespace can be made; a job
//     with network then gets the host's ([Layers.Net] "host").
//     [Layers.Missing] names what a sandbox lacks, for a runner that fails
//     closed.
//   - A scrubbed environment and no inherited descriptors: a command gets
//     exactly the environment it is given (nil is empty) and descriptors
//     0, 1, 2 (and those passed on purpose).
//   - The floor, when nothing else is available: the process groups of
//     the commands; the line then starts "isolation: weak (process groups
//     only)".
//
// # How processes are started
//
// Each sandbox has a launcher: an OS thread locked to a goroutine, which
// forks every process of the job. Cgroup v1 membership is per thread, so
// the launcher joins the job's v1 groups just for the fork and the child
// is in them from its first instruction; v2 membership is given by clone3
// (CLONE_INTO_CGROUP). no_new_privs and the network, IPC and UTS
// namespaces are set on the thread and inherited by its children only.
//
// With bubblewrap, one bwrap per job (the holder, started as the job's
// user) makes the user, mount, PID and cgroup namespaces and the
// filesystem view and then sleeps under bwrap's init, which reaps the
// job's orphans. Each command runs as
//
//	nsenter -t <holder> -U -m -p -C --preserve-credentials -- env -C DIR [LD_*=...] -- NAME ARGS...
//
// started as the job's user: it joins the holder's namespaces, so that a
// process a step leaves in the background is still there in later steps,
// as without the sandbox. Variables that the dynamic loader or the C
// library would act on (LD_*, GCONV_PATH, ...) are not given to nsenter,
// which runs outside the sandbox, but set by env(1) inside. nsenter passes
// the exit status on, a death by signal included.
//
// # Using it
//
// Per job: New (after the checkout: it gives the workspace to the job's
// user), then per command [Sandbox.Command] and [Sandbox.Start] (os/exec)
// or [Sandbox.ForkExec] (syscall.ForkExec, as the engine does), with HOME
// set to [Sandbox.Home] and TMPDIR to [Sandbox.TempDir]; after a command
// failed, [Sandbox.Reason] says whether the kernel killed it for a limit;
// [Sandbox.Kill] at the end of the job (or on a timeout or cancel, after
// the SIGTERM grace); [Sandbox.Close] when done. Once per runner start,
// before the first job: [CleanupStale].
//
// The runner should be a child subreaper (the engine makes it one): the
// job's orphans are then its children, and Kill reaps their zombies at
// once instead of waiting for PID 1.
//
// Requirements for all layers: root, Linux 5.7+ (clone3 into a cgroup;
// 5.14+ for cgroup.kill), cgroup v1
// controllers or v2 with memory, pids and cpu delegated, unprivileged user
// namespaces, and the Debian packages bubblewrap (0.8+), slirp4netns
// (1.2; jobs with the network on), util-linux (nsenter) and coreutils
// (env). Each missing one removes its layer only, except that a job
// without network is never given the host's.
package sandbox
