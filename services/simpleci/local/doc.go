// Package local implements the commands that work on a checkout on this
// machine, without a server: `simpleci exec`, which runs the pipeline with
// the same engine (libs/engine) as the runner service, and `simpleci lint`,
// which validates it and previews which steps would run.
//
// # simpleci exec
//
//	simpleci exec [-f FILE] [--event E] [--env K=V]... [--secret K=V]... [--context k=v]... [--timeout D]
//
// runs the pipeline in the current directory. It prints a header per step
// (and why a skipped step was skipped), the steps' output as it comes and a
// summary table (step, status, duration). On a terminal the steps' stderr
// is shown in red and headers and statuses in color; otherwise (a pipe, a
// file, or NO_COLOR set) the output is plain. Ctrl-C cancels the run: the
// engine stops every process of the job, then the summary is printed.
//
// The exit code is 0 when the run succeeded, 1 when it failed, timed out,
// was cancelled or errored, and 2 for a usage error or an invalid pipeline
// (every problem printed as FILE:LINE:COL: message).
//
// # simpleci lint
//
//	simpleci lint [-f FILE] [--event E] [--env K=V]... [--context k=v]...
//
// prints every problem as FILE:LINE:COL: message and exits 1, or prints
// "FILE: ok, N steps" and exits 0. With --event it also previews each step:
// "would run", "skipped" or "would fail" (a condition that cannot be
// evaluated fails its step), with the condition and its value, assuming
// that every earlier step that would run succeeds. Usage errors and an
// unreadable file exit 2.
//
// # Flags shared by both
//
//   - -f FILE: the pipeline file; default .simpleci/pipeline.json, or
//     .simpleci/pipeline.yaml (then .yml) when only that exists.
//   - --event E: context.event (default push).
//   - --env K=V: a variable for the steps and env in conditions;
//     --env K alone takes K's value from the caller's environment.
//   - --context k=v: sets context.k, overriding the defaults below.
//   - --secret K=V (exec only): like --env, and the value is masked in the
//     output. Values shorter than engine.MinSecretLength (4) are refused: masking
//     every occurrence of a 1-3 character string would destroy the log
//     while protecting little. --secret K alone reads the caller's
//     environment, which keeps the value out of the shell history and ps.
//
// The context mirrors what the scheduler gives a run: event, provider
// ("local"), repository (the name of the checkout's top directory), branch,
// ref and sha (from git in the current directory; empty when that is not a
// git checkout, branch and ref also when HEAD is detached),
// actor ($USER), run_id ("local") and run_number ("0").
//
// As on the server, a step sees only PATH (a fixed default), a fresh HOME,
// CI, SIMPLECI, SIMPLECI_WORKSPACE and the given variables; pass
// --env PATH to give steps the caller's PATH.
package local
