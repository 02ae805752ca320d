// Package pipeline parses, validates and compiles a SimpleCI pipeline file
// (.simpleci/pipeline.json or .simpleci/pipeline.yaml). It is pure: no
// I/O, no clocks; the only processes it knows of are the sh commands it
// renders for the engine.
//
// # Format
//
// The seed format is kept exactly:
//
//	{"steps": [{"name": "Build", "condition": "context.event == 'push'", "run": ["make", "make test"]}]}
//
// A step may also carry "id", "env" (string to string), "timeout" ("90s"),
// "continueOnError" and "workingDirectory"; the top level may carry
// "$schema" (ignored: it is for editors). Unknown fields are errors, so a
// typo never silently changes what runs.
//
// A file whose name ends in .yaml or .yml (see [IsYAML]) is read as YAML
// with the same fields, rules and messages. YAML features the model has no
// use for are errors: aliases and merge keys, custom tags, complex keys,
// more than one document.
//
// [Schema] is the JSON Schema (draft 2020-12) of the file, for editors.
//
// # Errors
//
// [Parse] reports every problem it finds at once as [Errors]. Each [Error]
// carries the file, a 1-based line and a 1-based column counted in Unicode
// characters (not bytes), the step it belongs to and a message, and prints as
//
//	.simpleci/pipeline.json:12:18: step "Run build": condition: undeclared reference to 'enviroment'
//
// Errors inside a condition or a template point at the character of the
// string that holds the offending part of the expression: escape sequences
// of JSON and of YAML's quoted styles are accounted for, and so are YAML's
// block scalars (| and >) and folded lines. For a YAML syntax error the
// YAML library gives a line only; the column is that of the line's first
// character that is not a space.
//
// [ParseWithOptions] also checks the step timeouts against the tier's run
// timeout ([Options]).
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
//
// # Errors describe, never quote
//
// An evaluation error (of a condition or a template) says what failed, why
// in general terms and at which column of the expression, never a value:
// env and context hold secrets, and the message becomes a run's reason, its
// events and API answers. CEL's own messages, which quote the string that is
// not a timestamp, the regular expression, a computed key or an index, are
// replaced; a missing key is named only when the expression spells it; an
// error this package does not know reads "evaluation failed".
//
// # Templates
//
// The commands of "run" and the values of "env" may hold {{ expr }}
// placeholders; expr is CEL over the same variables and functions as
// conditions. Every placeholder is compiled by Parse (errors with their
// position), and rendered by [Step.Commands] and [Step.Environment] just
// before the step runs. A string value is inserted as it is, an int, uint,
// double or bool in its plain decimal or true/false form; a list, map,
// null, bytes, timestamp, duration or optional is an error (the message
// says what to write instead). A placeholder ends at the first }} outside
// its string literals and braces; a placeholder whose expression is a
// string literal is the author's own text, inserted as written: a literal
// {{ is written {{ '{{' }}.
//
// In env values the value is inserted raw: no shell parses them. Templates
// in a step's env see env as the job's variables (not the step's own);
// the condition and the commands see the job's variables merged with the
// rendered step env.
//
// In commands every value is inserted so that sh reads it back as exactly
// its text, whatever it contains: a branch name, PR title or commit message
// can never become code. Parse reads each command the way sh tokenizes it
// and quotes each placeholder for where it stands, shown here for the value
// it's:
//
//	written               rendered                  where the placeholder stands
//	echo {{ x }}          echo 'it'\''s'            unquoted: in single quotes
//	echo 'a {{ x }} b'    echo 'a it'\''s b'        in '...': each ' as '\''
//	echo "a {{ x }} b"    echo "a "'it'\''s'" b"    in "...": close, quote, reopen
//
// A simple word in quotes is the word itself to sh:
// "node scripts/{{ context.event }}.js" renders
// "node scripts/'push'.js", which runs scripts/push.js.
//
// (Naive single quoting inside the author's own quotes would not be
// safe: in "{{ x }}" a value $(cmd) would run.) Where no quoting is safe,
// a placeholder is a parse error: directly after a backslash or a $, in
// backquotes, ${...}, $'...', a comment, a here-document or its
// delimiter, in what bash evaluates as arithmetic ($((...)), ((...)),
// $[...], an array subscript name[...], where bash runs $(...) even
// inside single quotes), and anywhere after a construct whose extent sh
// dialects disagree on. The way out is an env variable: NAME: "{{ expr }}" in the
// step's env, and "$NAME" in the command. A value a command passes on to
// eval, trap, sh -c, ssh, or bash's let, declare -i and [[ -eq ]] is code
// again: templates protect the shell's parsing of the command, not what
// the command does with its arguments.
//
// Rendering fails, and the step with it before any of its commands runs,
// when an expression fails (a missing key, a type error, the cost limit),
// gives a value a template cannot insert or one with a NUL character, or
// when a rendered command or variable exceeds [MaxArgSize]. The error is a
// [*RenderError] naming the step, the field and the placeholder.
package pipeline
