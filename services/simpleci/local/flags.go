package local

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Stdio is what a command reads and writes besides its arguments; tests
// inject their own.
type Stdio struct {
	// Stdout receives the steps' output, headers, the summary and lint's
	// report.
	Stdout io.Writer
	// Stderr receives usage and pipeline errors of exec.
	Stderr io.Writer
	// Dir is the current directory: the checkout exec runs in and the base
	// of a relative -f. Empty means the process's working directory.
	Dir string
	// Color enables ANSI colors (headers, statuses, stderr in red). Std
	// sets it when stdout is a terminal and NO_COLOR is unset.
	Color bool
	// Getenv reads the caller's environment, for --env K and --secret K
	// without a value (an empty value counts as unset); nil means the
	// process's environment, where a variable set to "" counts as set.
	Getenv func(string) string
}

// Std returns the process's own stdout, stderr and working directory, with
// colors when stdout is a terminal and NO_COLOR is not set.
func Std() Stdio {
	return Stdio{
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Color:  os.Getenv("NO_COLOR") == "" && isTerminal(os.Stdout),
	}
}

func (s Stdio) getenv(k string) (string, bool) {
	if s.Getenv == nil {
		return os.LookupEnv(k)
	}
	v := s.Getenv(k)
	return v, v != ""
}

// dir returns the absolute current directory.
func (s Stdio) dir() (string, error) {
	if s.Dir == "" {
		return os.Getwd()
	}
	return filepath.Abs(s.Dir)
}

// kv is one K=V flag value, in the order given.
type kv struct{ key, value string }

// kvFlag collects repeated K=V flags. A value-less K is looked up in the
// caller's environment when lookup is set.
type kvFlag struct {
	name   string
	list   []kv
	lookup func(string) (string, bool)
}

func (f *kvFlag) String() string {
	if f == nil {
		return ""
	}
	parts := make([]string, len(f.list))
	for i, p := range f.list {
		parts[i] = p.key + "=" + p.value
	}
	return strings.Join(parts, " ")
}

func (f *kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	if strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0) {
		return errors.New("a NUL character cannot be passed to a process")
	}
	if !ok {
		if f.lookup == nil {
			return fmt.Errorf("want KEY=VALUE, got %q", s)
		}
		if v, ok = f.lookup(k); !ok {
			return fmt.Errorf("%s is not set in the environment (give %s=VALUE)", k, k)
		}
	}
	f.list = append(f.list, kv{k, v})
	return nil
}

// options are the flags shared by exec and lint.
type options struct {
	file    string
	event   string
	env     *kvFlag
	context *kvFlag
	secrets *kvFlag // exec only
}

// usageError is a bad command line; the command prints it with the usage
// and exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func newFlagSet(name string, o *options, std Stdio, withSecrets bool) *flag.FlagSet {
	fs := flag.NewFlagSet("simpleci "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	lookup := std.getenv
	fs.StringVar(&o.file, "f", "", "the pipeline `file` (default .simpleci/pipeline.json, or .simpleci/pipeline.yaml if only that exists)")
	fs.StringVar(&o.file, "file", "", "same as -f")
	fs.StringVar(&o.event, "event", "", "context.event (default push)")
	o.env = &kvFlag{name: "env", lookup: lookup}
	fs.Var(o.env, "env", "a variable `K=V` for the steps and conditions (repeatable; K alone: from the environment)")
	o.context = &kvFlag{name: "context"}
	fs.Var(o.context, "context", "set context.`k=v` (repeatable)")
	if withSecrets {
		o.secrets = &kvFlag{name: "secret", lookup: lookup}
		fs.Var(o.secrets, "secret", "a variable `K=V` whose value is masked in the output (repeatable; K alone: from the environment)")
	}
	return fs
}

// parse parses args into fs, turning every problem into a usageError.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("unexpected argument %q (flags only; the pipeline file is -f FILE)", fs.Arg(0))}
	}
	return nil
}

// printUsage writes the command's flags.
func printUsage(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fmt.Fprintf(w, "usage: %s\n\nflags:\n", synopsis)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// Default pipeline files, in order of preference.
var defaultFiles = []string{".simpleci/pipeline.json", ".simpleci/pipeline.yaml", ".simpleci/pipeline.yml"}

// readPipeline reads the pipeline file: o.file, or the first default file
// that exists. name is the file as shown in messages (relative to dir
// when it was given relative).
func readPipeline(dir, file string) (name string, data []byte, err error) {
	if file != "" {
		path := file
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		data, err = os.ReadFile(path)
		if err != nil {
			return file, nil, fmt.Errorf("read the pipeline: %w", err)
		}
		return file, data, nil
	}
	for _, f := range defaultFiles {
		data, err = os.ReadFile(filepath.Join(dir, f))
		if err == nil {
			return f, data, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return f, nil, fmt.Errorf("read the pipeline: %w", err)
		}
	}
	return "", nil, fmt.Errorf("no pipeline here: none of %s exists in %s (or give -f FILE)", strings.Join(defaultFiles, ", "), dir)
}
