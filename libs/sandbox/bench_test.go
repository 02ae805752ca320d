package sandbox

import (
	"context"
	"log/slog"
	"os/exec"
	"testing"
)

// BenchmarkStart measures what the sandbox adds to starting a command:
// "exec" is a plain os/exec of /bin/true; "command" starts and waits for
// /bin/true in an existing sandbox (the cost per command of a job);
// "new+command+close" is a whole sandbox for one command (the cost per job).
func BenchmarkStart(b *testing.B) {
	ctx := context.Background()
	b.Run("exec", func(b *testing.B) {
		for b.Loop() {
			if err := exec.Command("/bin/true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, mode := range []struct {
		name string
		opts Options
	}{
		{"bubblewrap", Options{}},
		{"no-bubblewrap", Options{NoBubblewrap: true}},
	} {
		if mode.name == "bubblewrap" {
			if _, err := findTools(); err != nil {
				continue
			}
		}
		opts := mode.opts
		opts.Limits = Limits{Memory: 256 << 20, Pids: 128, CPU: 1}
		b.Run(mode.name+"/command", func(b *testing.B) {
			s := newSandbox(b, opts)
			b.ResetTimer()
			for b.Loop() {
				cmd, err := s.Command(ctx, "", jobEnv(s), "/bin/true")
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Start(cmd); err != nil {
					b.Fatal(err)
				}
				if err := cmd.Wait(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(mode.name+"/new+command+close", func(b *testing.B) {
			o := opts
			o.Workspace = newWorkspace(b)
			for b.Loop() {
				s, err := New("bench", o, slog.New(slog.DiscardHandler))
				if err != nil {
					b.Fatal(err)
				}
				cmd, err := s.Command(ctx, "", jobEnv(s), "/bin/true")
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Start(cmd); err != nil {
					b.Fatal(err)
				}
				if err := cmd.Wait(); err != nil {
					b.Fatal(err)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
