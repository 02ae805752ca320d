package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Command is a `serve`-style command line: the common flags (ServeFlags) and those of
// its components.
type Command struct {
	// Name is shown in usage and errors, e.g. "simpleci serve" or "auth".
	Name string
	// Components are every component the command knows; each registers its flags.
	Components []Component
	// Select, when set, registers flags that choose which of Components run (called
	// before parsing; its result after); nil runs them all.
	Select func(fs *flag.FlagSet) func() ([]Component, error)
}

// Run parses args, runs the chosen components until the first signal and shuts down
// in order (a second signal aborts the work in progress).
func (c Command) Run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := ServeFlags(fs)
	var chosen func() ([]Component, error)
	if c.Select != nil {
		chosen = c.Select(fs)
	}
	for _, comp := range c.Components {
		if f, ok := comp.(Flagger); ok {
			f.Flags(fs)
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", c.Name, fs.Args())
	}
	comps := c.Components
	if chosen != nil {
		var err error
		if comps, err = chosen(); err != nil {
			return err
		}
	}
	cfg := config()
	cfg.Log = Logger(stderr)
	stop, abort, release := Signals()
	defer release()
	cfg.Abort = abort
	cfg.Ready = func(info Info) {
		var names []string
		for _, comp := range comps {
			names = append(names, comp.Name())
		}
		fmt.Fprintf(stdout, "serving %s: grpc %s http %s\n", strings.Join(names, ","), info.GRPCAddr, info.HTTPAddr)
	}
	return Run(stop, cfg, comps...)
}

// Main runs the command on the process's arguments and returns the exit code.
func (c Command) Main() int {
	err := c.Run(os.Args[1:], os.Stdout, os.Stderr)
	if err == nil || errors.Is(err, context.Canceled) {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", c.Name, err)
	return 1
}
