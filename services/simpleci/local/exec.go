package local

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/simpleci/simpleci/libs/engine"
	"github.com/simpleci/simpleci/libs/pipeline"
)

const execSynopsis = "simpleci exec [-f FILE] [--event E] [--env K=V]... [--secret K=V]... [--context k=v]... [--timeout D]"

// Exit codes of exec and lint.
const (
	// ExitOK: the run succeeded, or the pipeline is valid.
	ExitOK = 0
	// ExitFailed: the run failed, timed out, was cancelled or errored; or
	// lint found problems.
	ExitFailed = 1
	// ExitUsage: a bad command line, no pipeline file, or (exec) an
	// invalid pipeline.
	ExitUsage = 2
)

// Exec runs `simpleci exec` with args (the flags after "exec") and returns
// the exit code (see the package doc). Cancelling ctx (Ctrl-C) cancels the
// run: the engine stops every process of the job, and Exec prints the
// summary and returns ExitFailed.
func Exec(ctx context.Context, args []string, std Stdio) int {
	var o options
	fs := newFlagSet("exec", &o, std, true)
	timeout := fs.Duration("timeout", 0, "limit the whole run, e.g. 150s like the standard tier (default: no limit)")
	filesDir := fs.String("files", "", "where cache-files steps keep caches and store-files steps write NAME.tar.zst (default: a directory per checkout under ~/.cache/simpleci/exec)")
	if err := parse(fs, args); err != nil {
		return usageExit(std.Stderr, fs, execSynopsis, err)
	}
	var problems []string
	for _, s := range o.secrets.list {
		if n := utf8.RuneCountInString(s.value); n < engine.MinSecretLength {
			problems = append(problems, fmt.Sprintf("--secret %s: the value has %d characters; secrets need at least %d, "+
				"because every occurrence of so short a string would be masked, which destroys the log while hiding little "+
				"(pass it with --env if it is not really secret)", s.key, n, engine.MinSecretLength))
		}
	}
	if *timeout < 0 {
		problems = append(problems, "--timeout must not be negative")
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(std.Stderr, "simpleci exec:", p)
		}
		return ExitUsage
	}
	dir, err := std.dir()
	if err != nil {
		fmt.Fprintln(std.Stderr, "simpleci exec:", err)
		return ExitUsage
	}
	// git runs while the pipeline is read and compiled.
	gitc := make(chan gitInfo, 1)
	if o.contextHas("branch", "ref", "sha") {
		gitc <- gitInfo{}
	} else {
		go func() { gitc <- readGitFn(dir) }()
	}
	name, data, err := readPipeline(dir, o.file)
	if err != nil {
		fmt.Fprintln(std.Stderr, "simpleci exec:", err)
		return ExitUsage
	}
	pl, err := parsePipeline(name, data)
	if err != nil {
		printParseErrors(std.Stderr, err)
		return ExitUsage
	}
	jobCtx := buildContext(dir, &o, func() gitInfo { return <-gitc })
	if _, set := jobCtx["inputs"]; !set { // the pipeline's defaults, as a manual trigger without inputs
		defaults, _ := pl.ResolveInputs(nil, false)
		jobCtx["inputs"] = pl.InputValues(defaults)
	}
	secrets := make([]string, 0, len(o.secrets.list))
	for _, s := range o.secrets.list {
		secrets = append(secrets, s.value)
	}
	job := engine.Job{Pipeline: pl, Dir: dir, Env: envMap(o.env, o.secrets), Context: jobCtx, Timeout: *timeout, Secrets: secrets}

	p := newPrinter(std.Stdout, newPalette(std.Color))
	p.intro(name, len(pl.Steps), jobCtx)
	for _, s := range pl.Steps {
		if s.Type == "" {
			continue
		}
		fd := *filesDir
		if fd == "" {
			fd = defaultFilesDir(dir)
		}
		files, err := newExecFiles(fd)
		if err != nil {
			fmt.Fprintln(std.Stderr, "simpleci exec: --files:", err)
			return ExitUsage
		}
		job.Files = files
		p.line(p.pal.dim, "caches and artifacts: "+fd)
		break
	}
	res := engine.Run(ctx, job, p)
	p.summary(pl.Steps, res)
	if res.Status == engine.StatusSucceeded {
		return ExitOK
	}
	return ExitFailed
}

// printer shows a run as it happens: it is the engine's Observer.
type printer struct {
	w       io.Writer
	pal     palette
	midLine bool   // the last output did not end a line
	buf     []byte // reused for colored chunks
}

func newPrinter(w io.Writer, pal palette) *printer {
	return &printer{w: w, pal: pal}
}

func (p *printer) intro(file string, steps int, ctx map[string]any) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s, event %v", file, plural(steps, "step"), ctx["event"])
	if br, _ := ctx["branch"].(string); br != "" {
		fmt.Fprintf(&b, ", branch %s", br)
	}
	if sha, _ := ctx["sha"].(string); sha != "" {
		fmt.Fprintf(&b, " at %.12s", sha)
	}
	p.line(p.pal.dim, b.String())
}

// line prints one line of the printer's own, after ending a step's
// unfinished last line.
func (p *printer) line(style, text string) {
	if p.midLine {
		io.WriteString(p.w, "\n")
		p.midLine = false
	}
	if style != "" {
		text = style + text + p.pal.reset
	}
	io.WriteString(p.w, text+"\n")
}

// StepStarted prints the step's header.
func (p *printer) StepStarted(_ int, name string, _ time.Time) {
	p.line(p.pal.bold+p.pal.cyan, "==> "+name)
}

// StepSkipped prints the step's name and why it did not run.
func (p *printer) StepSkipped(_ int, name, reason string) {
	p.line(p.pal.yellow, fmt.Sprintf("--> %s: skipped (%s)", name, reason))
}

// StepFinished prints why a step did not succeed.
func (p *printer) StepFinished(i int, name string, r engine.StepResult) {
	if r.Status == engine.StatusSucceeded {
		return
	}
	p.line(p.pal.red, fmt.Sprintf("<== %s: %s (%s)", name, strings.ReplaceAll(string(r.Status), "_", " "), r.Reason))
}

// BorrowsData tells the engine that Log is done with a chunk when it
// returns (it is written out), so the engine reuses its buffer.
func (p *printer) BorrowsData() bool { return true }

// Log writes a chunk of output as it comes, stderr in red on a terminal.
func (p *printer) Log(c engine.LogChunk) {
	if len(c.Data) == 0 {
		return
	}
	data := c.Data
	if c.Stream == "stderr" && p.pal.red != "" {
		// The reset goes before a final newline, so that no color
		// bleeds into the next line (a header, the other stream).
		body, nl := data, ""
		if body[len(body)-1] == '\n' {
			body, nl = body[:len(body)-1], "\n"
		}
		p.buf = append(append(append(append(p.buf[:0], p.pal.red...), body...), p.pal.reset...), nl...)
		data = p.buf
	}
	p.w.Write(data)
	p.midLine = c.Data[len(c.Data)-1] != '\n'
}

// summary prints the table of steps and the run's outcome.
func (p *printer) summary(steps []*pipeline.Step, res engine.Result) {
	if p.midLine {
		io.WriteString(p.w, "\n")
		p.midLine = false
	}
	nameW, statusW := len("STEP"), len("STATUS")
	for i, s := range steps {
		nameW = max(nameW, utf8.RuneCountInString(s.Name))
		if i < len(res.Steps) {
			statusW = max(statusW, len(res.Steps[i].Status))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s%-*s  %-*s  %s%s\n", p.pal.bold, nameW, "STEP", statusW, "STATUS", "DURATION", p.pal.reset)
	for i, s := range steps {
		var sr engine.StepResult
		if i < len(res.Steps) {
			sr = res.Steps[i]
		}
		dur := "-"
		if !sr.StartedAt.IsZero() {
			dur = formatDuration(sr.FinishedAt.Sub(sr.StartedAt))
		}
		pad := strings.Repeat(" ", nameW-utf8.RuneCountInString(s.Name))
		fmt.Fprintf(&b, "%s%s  %s%-*s%s  %s\n", s.Name, pad, p.statusColor(sr.Status), statusW, sr.Status, p.pal.reset, dur)
	}
	outcome := fmt.Sprintf("run %s in %s", strings.ReplaceAll(string(res.Status), "_", " "), formatDuration(res.FinishedAt.Sub(res.StartedAt)))
	if res.Reason != "" {
		outcome += ": " + res.Reason
	}
	fmt.Fprintf(&b, "\n%s%s%s\n", p.statusColor(res.Status)+p.pal.bold, outcome, p.pal.reset)
	io.WriteString(p.w, b.String())
}

func (p *printer) statusColor(s engine.Status) string {
	switch s {
	case engine.StatusSucceeded:
		return p.pal.green
	case engine.StatusSkipped, engine.StatusCancelled:
		return p.pal.yellow
	case "":
		return ""
	}
	return p.pal.red
}

// formatDuration rounds for people: 0.4ms, 12.3ms, 1.23s, 2m5s.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
