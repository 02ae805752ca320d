package local

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/simpleci/simpleci/libs/pipeline"
)

const lintSynopsis = "simpleci lint [-f FILE] [--event E] [--env K=V]... [--context k=v]..."

// readGitFn is replaced by tests, so that golden output does not depend on
// the checkout the tests run in.
var readGitFn = readGit

// Lint runs `simpleci lint` with args (the flags after "lint") and returns
// the exit code: 0 when the pipeline is valid, 1 when it is not (every
// problem printed to std.Stdout as FILE:LINE:COL: message), 2 for a usage
// error or a file that cannot be read.
func Lint(args []string, std Stdio) int {
	var o options
	fs := newFlagSet("lint", &o, std, false)
	if err := parse(fs, args); err != nil {
		return usageExit(std.Stderr, fs, lintSynopsis, err)
	}
	dir, err := std.dir()
	if err != nil {
		fmt.Fprintln(std.Stderr, "simpleci lint:", err)
		return ExitUsage
	}
	name, data, err := readPipeline(dir, o.file)
	if err != nil {
		fmt.Fprintln(std.Stderr, "simpleci lint:", err)
		return ExitUsage
	}
	pl, err := parsePipeline(name, data)
	if err != nil {
		printParseErrors(std.Stdout, err)
		return ExitFailed
	}
	fmt.Fprintf(std.Stdout, "%s: ok, %s\n", name, plural(len(pl.Steps), "step"))
	if o.event != "" {
		previewSteps(std.Stdout, pl, envMap(o.env), buildContext(dir, &o, func() gitInfo { return readGitFn(dir) }), newPalette(std.Color))
	}
	return ExitOK
}

// usageExit reports a bad command line (or prints the help) and returns
// the exit code.
func usageExit(w io.Writer, fs *flag.FlagSet, synopsis string, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		printUsage(w, fs, synopsis)
		return ExitOK
	}
	fmt.Fprintf(w, "%s: %v\n", fs.Name(), err)
	printUsage(w, fs, synopsis)
	return ExitUsage
}

// parsePipeline parses a pipeline file; the file name picks the format.
func parsePipeline(name string, data []byte) (*pipeline.Pipeline, error) {
	return pipeline.Parse(name, data)
}

// printParseErrors prints every problem on its own line.
func printParseErrors(w io.Writer, err error) {
	var errs pipeline.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(w, e.Error())
		}
		return
	}
	fmt.Fprintln(w, err)
}

func plural(n int, what string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// Preview verdicts.
const (
	verdictRun     = "would run"
	verdictSkipped = "skipped"
	verdictFail    = "would fail"
)

// previewSteps evaluates each step's condition as the engine would,
// assuming that every earlier step that runs succeeds, and prints one line
// per step: verdict, name, condition → value.
func previewSteps(w io.Writer, pl *pipeline.Pipeline, env map[string]string, ctx map[string]any, pal palette) {
	type line struct{ verdict, name, why string }
	lines := make([]line, 0, len(pl.Steps))
	states := map[string]pipeline.StepState{}
	nameWidth := 0
	for _, s := range pl.Steps {
		// As the engine does: the step's env templates see the job's env,
		// the condition sees it merged with the rendered step env, and a
		// step that would run fails when its env cannot be rendered.
		sv := pipeline.Vars{Env: env, Context: ctx, Steps: states, Run: pipeline.RunState{Status: pipeline.StatusSucceeded}}
		stepEnv, envErr := s.Environment(sv)
		if envErr != nil {
			stepEnv = env
		}
		sv.Env = stepEnv
		ok, err := s.Condition.Eval(sv)
		if envErr != nil && (ok || err != nil) {
			err = envErr
		}
		cond := oneLine(s.Condition.String())
		l := line{name: s.Name}
		switch {
		case err != nil:
			l.verdict = verdictFail
			shown := cond
			if shown == "" {
				shown = "(no condition)"
			}
			l.why = fmt.Sprintf("%s → error: %s", shown, strings.TrimPrefix(err.Error(), "condition: "))
			states[s.ID] = pipeline.StepState{Status: pipeline.StatusFailed, ExitCode: -1}
		case ok:
			l.verdict = verdictRun
			states[s.ID] = pipeline.StepState{Status: pipeline.StatusSucceeded, ExitCode: 0}
		default:
			l.verdict = verdictSkipped
			states[s.ID] = pipeline.StepState{Status: pipeline.StatusSkipped, ExitCode: -1}
		}
		if err == nil {
			if cond == "" {
				l.why = "(no condition: runs while the run succeeds)"
			} else {
				l.why = fmt.Sprintf("%s → %t", cond, ok)
			}
		}
		nameWidth = max(nameWidth, utf8.RuneCountInString(s.Name))
		lines = append(lines, l)
	}
	for _, l := range lines {
		color := pal.green
		switch l.verdict {
		case verdictSkipped:
			color = pal.yellow
		case verdictFail:
			color = pal.red
		}
		fmt.Fprintf(w, "%s%-10s%s  %s%s  %s\n", color, l.verdict, pal.reset,
			l.name, strings.Repeat(" ", nameWidth-utf8.RuneCountInString(l.name)), l.why)
	}
}

// oneLine shows a condition on one line: each line break, with the white
// space around it, becomes one space.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, " ")
}
