package local

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkExec50TrueSteps is `simpleci exec` on 50 steps of true without
// the binary's start and without git (TestMain stubs it): flags, reading
// and parsing the file, the engine, the printer.
// services/simpleci/local/bench.sh measures the real binary against a
// shell loop.
func BenchmarkExec50TrueSteps(b *testing.B) {
	steps := make([]string, 50)
	for i := range steps {
		steps[i] = fmt.Sprintf(`{"name": "step %d", "run": "true"}`, i)
	}
	dir := b.TempDir()
	writeFile(b, filepath.Join(dir, ".simpleci", "pipeline.json"), `{"steps": [`+strings.Join(steps, ",")+`]}`)
	for b.Loop() {
		if code := Exec(context.Background(), nil, Stdio{Stdout: io.Discard, Stderr: io.Discard, Dir: dir}); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*50)/1e6, "ms/step")
}

// BenchmarkExecOutput200kLines is `simpleci exec --secret TOKEN=...
// >/dev/null` on one step printing 200,000 lines of ~100 bytes, without
// the binary's start.
func BenchmarkExecOutput200kLines(b *testing.B) {
	dir := b.TempDir()
	writeFile(b, filepath.Join(dir, ".simpleci", "pipeline.json"), `{"steps": [{"name": "Lorem", "run": "seq 1 200000 | sed 's/$/ lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore/'"}]}`)
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	for b.Loop() {
		if code := Exec(context.Background(), []string{"--secret", "TOKEN=s3cr3t-value"}, Stdio{Stdout: devNull, Stderr: devNull, Dir: dir}); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
}
