package local

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exec runs cache-files and store-files steps with a local store: the second run hits
// the cache the first saved; the artifact is a file.
func TestExecCachesAndArtifacts(t *testing.T) {
	dir := t.TempDir()
	files := filepath.Join(t.TempDir(), "files")
	writeFile(t, filepath.Join(dir, ".simpleci", "pipeline.json"), `{"steps": [
  {"name": "c", "type": "cache-files", "key": "deps-1", "restoreKeys": ["deps-"], "fileNames": ["deps"], "expiry": "1h"},
  {"name": "build", "run": "if [ -f deps/x ]; then echo cached; else mkdir -p deps; echo x > deps/x; echo built; fi"},
  {"name": "s", "type": "store-files", "key": "out", "fileNames": ["deps/**"], "expiry": "1h"}]}`)
	run := func() string {
		var out bytes.Buffer
		code := Exec(t.Context(), []string{"--files", files}, Stdio{Stdout: &out, Stderr: &out, Dir: dir})
		if code != ExitOK {
			t.Fatalf("exit %d\n%s", code, out.String())
		}
		return out.String()
	}
	first := run()
	for _, want := range []string{"caches and artifacts: " + files, "cache miss: deps-1", "built", "stored artifact out: 1 files", `cache saved: deps-1`} {
		if !strings.Contains(first, want) {
			t.Errorf("first run lacks %q:\n%s", want, first)
		}
	}
	os.RemoveAll(filepath.Join(dir, "deps"))
	second := run()
	for _, want := range []string{"cache hit: deps-1 (1 files, 2 B)", "cached"} {
		if !strings.Contains(second, want) {
			t.Errorf("second run lacks %q:\n%s", want, second)
		}
	}
	if fi, err := os.Stat(filepath.Join(files, "artifacts", "out.tar.zst")); err != nil || fi.Size() == 0 {
		t.Errorf("artifact file: %v", err)
	}
}
