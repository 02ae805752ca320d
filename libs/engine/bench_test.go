package engine

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The benchmarks of docs/benchmarks.md ("Pipeline engine and simpleci
// exec"). Each engine benchmark has its baseline beside it, so that both
// are measured in the same run:
//
//	go test -run '^$' -bench . -benchmem ./libs/engine
//
// ms/step is wall time per step; self-µs/step is the CPU time of this
// process (the engine's own work, not the children's) per step.

// selfCPU returns the CPU time this process used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportPerStep(b *testing.B, steps int, cpu0 time.Duration) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*steps)/1e6, "ms/step")
	b.ReportMetric(float64((selfCPU()-cpu0).Nanoseconds())/float64(b.N*steps)/1e3, "self-µs/step")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRun50TrueSteps runs a pipeline of 50 steps of true.
func BenchmarkRun50TrueSteps(b *testing.B) {
	steps := make([]step, 50)
	for i := range steps {
		steps[i] = step{"name": fmt.Sprintf("step %d", i), "run": "true"}
	}
	p := mustPipeline(b, steps...)
	dir := b.TempDir()
	cpu0 := selfCPU()
	for b.Loop() {
		if res := Run(context.Background(), Job{Pipeline: p, Dir: dir}, nil); res.Status != StatusSucceeded {
			b.Fatal(res.Reason)
		}
	}
	reportPerStep(b, 50, cpu0)
}

// BenchmarkRun50TrueStepsBaselineShellLoop is the baseline of
// BenchmarkRun50TrueSteps: a shell loop running sh -c true 50 times.
func BenchmarkRun50TrueStepsBaselineShellLoop(b *testing.B) {
	cpu0 := selfCPU()
	for b.Loop() {
		if err := exec.Command("/bin/sh", "-c", "for i in $(seq 50); do sh -c true; done").Run(); err != nil {
			b.Fatal(err)
		}
	}
	reportPerStep(b, 50, cpu0)
}

// BenchmarkRun50TrueStepsBaselineOSExec starts sh -e -c true 50 times with
// os/exec and nothing else: what any Go program pays per process.
func BenchmarkRun50TrueStepsBaselineOSExec(b *testing.B) {
	cpu0 := selfCPU()
	for b.Loop() {
		for range 50 {
			if err := exec.Command("/bin/sh", "-e", "-c", "true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportPerStep(b, 50, cpu0)
}

// loremCommand prints n lines of about 100 bytes.
func loremCommand(n int) string {
	return fmt.Sprintf("seq 1 %d | sed 's/$/ lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore/'", n)
}

// loremBytes is the size of loremCommand(n)'s output.
func loremBytes(n int) int64 {
	const suffix = len(" lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore\n")
	var total int64
	for i := 1; i <= n; i++ {
		total += int64(len(fmt.Sprint(i)) + suffix)
	}
	return total
}

// discard is an observer that drops output, as `simpleci exec
// >/dev/null` does, and counts it.
type discard struct{ bytes int64 }

func (*discard) StepStarted(int, string, time.Time)   {}
func (*discard) StepSkipped(int, string, string)      {}
func (*discard) StepFinished(int, string, StepResult) {}
func (d *discard) Log(c LogChunk)                     { d.bytes += int64(len(c.Data)) }
func (*discard) BorrowsData() bool                    { return true }

// BenchmarkOutput200kLines streams 200,000 lines of ~100 bytes through
// the engine with one secret set.
func BenchmarkOutput200kLines(b *testing.B) {
	p := mustPipeline(b, step{"name": "Lorem", "run": loremCommand(200_000)})
	dir := b.TempDir()
	want := loremBytes(200_000)
	b.SetBytes(want)
	for b.Loop() {
		var d discard
		res := Run(context.Background(), Job{Pipeline: p, Dir: dir, Secrets: []string{"s3cr3t-value"}}, &d)
		if res.Status != StatusSucceeded || d.bytes != want {
			b.Fatalf("%s %s: %d bytes, want %d", res.Status, res.Reason, d.bytes, want)
		}
	}
}

// BenchmarkOutput200kLinesBaselineShell is the baseline of
// BenchmarkOutput200kLines: the same command writing to /dev/null.
func BenchmarkOutput200kLinesBaselineShell(b *testing.B) {
	b.SetBytes(loremBytes(200_000))
	for b.Loop() {
		if err := exec.Command("/bin/sh", "-c", loremCommand(200_000)+" >/dev/null").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMask measures the masker alone on lines of ~100 bytes, in
// 4 KiB writes (what a program's stdio writes into a pipe).
func BenchmarkMask(b *testing.B) {
	var in bytes.Buffer
	for i := 0; in.Len() < 4<<20; i++ {
		fmt.Fprintf(&in, "%d lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore\n", i)
	}
	pem := "-----BEGIN PRIVATE KEY-----\n" + strings.Repeat("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n", 25) + "-----END PRIVATE KEY-----"
	tests := []struct {
		name    string
		secrets []string
	}{
		{"none", nil},
		{"one", []string{"s3cr3t-value"}},
		{"ten", []string{"s3cr3t-value", "hunter22", "AKIAIOSFODNN7EXAMPLE", "ghp_0123456789abcdef", "p@ssw0rd!", "xoxb-1234-5678", "correct horse", "tr0ub4dor", "sk_live_abcdef", "Zm9vYmFy"}},
		{"multi-line", []string{pem}},
		{"matching-letter", []string{"lorem ipsum dolor sit amet, secret"}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			data := in.Bytes()
			m := newMasker(maskValues(tt.secrets))
			var n int
			emit := func(p []byte) { n += len(p) }
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				for off := 0; off < len(data); off += 4096 {
					m.write(data[off:min(off+4096, len(data))], false, emit)
				}
				m.write(nil, true, emit)
			}
		})
	}
}
