// Package engine runs a compiled pipeline in a workspace: it evaluates each
// step's condition, runs the step's commands with sh -e -c, streams their
// output in chunks, masks secrets (in the output and in every reason it
// reports), enforces the job's and the steps' time limits and kills every
// process of the job at the end.
//
// # Isolation
//
// This package provides the floor that works everywhere; a [Sandbox] in
// [Job.Sandbox] (the runner's libs/sandbox) adds cgroups, an unprivileged
// user, no_new_privs and namespaces where the machine allows them: every
// command is then started by the sandbox's ForkExec, HOME and TMPDIR are
// the sandbox's, a failed step's reason names a memory or pids limit the
// kernel enforced ("exit code 137: memory limit (1 GiB) exceeded: ..."),
// and at the end of the job, after the process groups, the sandbox kills
// whatever of the job is left, setsid and double-forked processes included.
//
//   - Environment: a step sees only PATH, HOME, CI=true, SIMPLECI=true,
//     SIMPLECI_WORKSPACE (and TMPDIR with a sandbox), then [Job.Env], then
//     the step's env. Nothing of the calling process's environment leaks
//     through.
//   - HOME is a fresh temporary directory per job, removed at the end (the
//     sandbox's, with a sandbox).
//   - File descriptors: only stdin (/dev/null), stdout and stderr reach a
//     command. Run marks every other descriptor the process inherited
//     close-on-exec (descriptors opened by Go already are).
//   - Process groups: every command runs in its own process group. On a
//     timeout or cancel the group gets SIGTERM and, after [Job.KillGrace],
//     SIGKILL. Background processes a command leaves behind keep running
//     until the job ends (so a step can start a service for later steps);
//     at the end of the job every group the job created is killed the same
//     way.
//   - Reaping: Run makes the calling process a child subreaper (Linux
//     PR_SET_CHILD_SUBREAPER), so processes orphaned inside a job are
//     re-parented to it and reaped by the engine (it waits only for
//     processes in the job's own groups). Without that, orphans would be
//     left as zombies on machines whose PID 1 does not reap.
//   - Not covered without a sandbox: a process that leaves its group
//     (setsid, setpgid) escapes the group kill; the sandbox's Kill catches
//     those.
//
// A command that leaves a background process holding its stdout or stderr
// gets [WaitDelay] after it exits; then the engine stops reading that
// output, so such processes should redirect their output to a file.
//
// # Output
//
// stdout and stderr are read as output arrives on either and delivered as
// [LogChunk]s of at most [MaxChunkSize] bytes, flushed when full, after
// [FlushInterval], when the other stream produces output (so the
// interleaving of the two streams is kept as it arrives) and when a
// command ends. Lines may be split between chunks. Sequence numbers start
// at 1 and increase by one per chunk across the whole job; a [Job.Preamble]
// comes first, as stream "system" for step -1. Memory is
// bounded: a chunk is the largest buffer, whatever the volume of output.
// A command that writes in bulk has its pipe enlarged to 1 MiB and read
// about once a millisecond rather than at every 4 KiB write, which halves
// the cost of its output; interactive output is read as it comes.
//
// [Job.StepLogLimit] and [Job.RunLogLimit] cap what is delivered of each
// step and of the job: at the cut a "system" chunk of the step says which
// cap was reached, the rest of the output is still read (the command never
// blocks) and dropped, and at the end of the step another says how many
// bytes were dropped. The step's outcome does not change.
//
// Secret values ([Job.Secrets]), their base64 encodings and, for a
// multi-line secret, each of its lines of at least [MinSecretLength]
// characters (trimmed) are replaced by "***" before output leaves the
// engine, also when a value is split across writes or chunks: the engine
// holds back a possible beginning of a secret until it knows whether the
// secret follows. The search skips over ordinary output (Wu-Manber), at
// gigabytes per second for a handful of secrets.
//
// An observer that implements [DataBorrower] gets the engine's own buffer
// in each LogChunk instead of a copy, so streaming allocates nothing.
//
// # Statuses
//
// A failing step (non-zero exit, its own timeout, a condition that fails
// to evaluate) fails the run unless the step has continueOnError; later
// steps run only when their condition calls failure() or always(). When
// the job's time runs out the running step ends timed_out, the run ends
// timed_out and only always() steps run, within [Job.CleanupTimeout]. A
// cancel of ctx works the same way with cancelled, and also runs
// cancelled() steps.
package engine
