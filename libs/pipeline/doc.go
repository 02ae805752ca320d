// Package pipeline parses, validates and compiles a SimpleCI pipeline file
// (.simpleci/pipeline.json). It is pure: no I/O, no processes, no clocks.
//
// # Format
//
// The seed format is kept exactly:
//
//	{"steps": [{"name": "Build", "condition": "context.event == 'push'", "run": ["make", "make test"]}]}
//
// A step may also carry "id", "env" (string to string), "timeout" ("90s"),
// "continueOnError" and "workingDirectory". Unknown fields are errors, so a
// typo never silently changes what runs.
//
// # Errors
//
// [Parse] reports every problem it finds at once as [Errors]. Each [Error]
// carries the file, a 1-based line and a 1-based column counted in Unicode
// characters (not bytes), the step it belongs to and a message, and prints as
//
//	.simpleci/pipeline.json:12:18: step "Run build": condition: undeclared reference to 'enviroment'
//
// Errors inside a condition point at the character of the JSON string that
// holds the offending part of the expression (escape sequences are accounted
// for).
//
// # Conditions
//
// A condition is a CEL expression (cel.dev/cel-go) over four variables:
//
//   - env: map(string, string), the variables granted to the job merged with the step's env
//   - context: map(string, dyn): event, provider, repository, branch, ref, sha, actor,
//     run_id, run_number, pull_request, payload, ...
//   - steps: map(string, dyn), per earlier step id: {status, exit_code}
//   - run: map(string, dyn): {status}, the run's status so far
//
// and four status functions:
//
//   - success(): no step has failed so far and the run was neither cancelled nor timed out
//   - failure(): an earlier step failed (and did not have continueOnError)
//   - cancelled(): the run was cancelled
//   - always(): true
//
// A condition that calls none of the status functions means
// success() && (condition); an empty condition means success(). So after a
// failure only steps that ask for it run. After a job timeout only steps
// that call always() run.
//
// Status values (run.status and steps.<id>.status) are the strings
// "succeeded", "failed", "timed_out", "cancelled" and, for steps only,
// "skipped".
//
// Conditions are compiled once, by [Parse]; a syntax error, an unknown
// variable or function, or a non-bool result type is a parse error. A
// condition whose type is only known at run time (e.g. context.x) is checked
// when evaluated. Evaluation has a cost limit ([DefaultCostLimit]), so an
// expression that would run away is an error, not a hang.
//
// # Missing keys
//
// Reading a key that is not in a map (env.FOO when FOO is not granted) is
// an evaluation error, never a silent false: [Condition.Eval] returns an
// error that names the key and the guard to use (has(env.FOO),
// 'FOO' in env, or env.?FOO.orValue("")). The engine marks such a step
// failed with that error as the reason, which fails the run unless the step
// has continueOnError. This is deliberate: a misspelt or ungranted variable
// must not quietly skip a deployment step.
package pipeline
