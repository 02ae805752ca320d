package engine

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/pipeline"
)

// memFiles is a Files in memory: entries in the order stored.
type memFiles struct {
	mu      sync.Mutex
	caches  []memEntry
	stored  map[string][]byte // artifacts
	failPut error
}

type memEntry struct {
	key  string
	data []byte
}

func (m *memFiles) RestoreCache(_ context.Context, key string, restore []string) (io.ReadCloser, CacheEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.caches {
		if e.key == key {
			return io.NopCloser(bytes.NewReader(e.data)), CacheEntry{Key: key, Size: int64(len(e.data))}, nil
		}
	}
	for _, p := range restore {
		for i := len(m.caches) - 1; i >= 0; i-- { // newest first
			if e := m.caches[i]; strings.HasPrefix(e.key, p) {
				return io.NopCloser(bytes.NewReader(e.data)), CacheEntry{Key: e.key, Prefix: p, Size: int64(len(e.data))}, nil
			}
		}
	}
	return nil, CacheEntry{}, ErrCacheMiss
}

func (m *memFiles) Put(_ context.Context, kind, key string, _ time.Duration, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failPut != nil {
		return m.failPut
	}
	if kind == KindArtifact {
		if m.stored == nil {
			m.stored = map[string][]byte{}
		}
		m.stored[key] = data
		return nil
	}
	for _, e := range m.caches {
		if e.key == key {
			return ErrCacheExists
		}
	}
	m.caches = append(m.caches, memEntry{key, data})
	return nil
}

const cachePipeline = `{"steps": [
  {"name": "Deps cache", "type": "cache-files", "key": "deps-{{ env.LOCK }}", "restoreKeys": ["deps-"], "fileNames": ["deps"], "expiry": "7d"},
  {"name": "Install", "run": "if [ -f deps/installed ]; then echo cached: $(cat deps/installed); else sleep 1; mkdir -p deps/sub; echo {{ env.LOCK }} > deps/installed; echo installed; fi"},
  {"name": "Store", "type": "store-files", "key": "report", "fileNames": ["deps/**"], "expiry": "1h"}]}`

func runCacheJob(t *testing.T, files Files, lock string) (*recorder, Result, time.Duration) {
	t.Helper()
	pl, err := pipeline.Parse("p.json", []byte(cachePipeline))
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t)
	res := Run(context.Background(), Job{Pipeline: pl, Dir: t.TempDir(), Env: map[string]string{"LOCK": lock}, Files: files}, rec)
	rec.check()
	if res.Status != StatusSucceeded {
		t.Fatalf("run %s: %s", res.Status, res.Reason)
	}
	return rec, res, res.Steps[1].FinishedAt.Sub(res.Steps[1].StartedAt)
}

// TestCacheFiles: run 1 misses and saves; run 2 hits and its dependent step is faster;
// a changed key restores through the prefix and saves under the new key.
func TestCacheFiles(t *testing.T) {
	files := &memFiles{}
	rec1, _, slow := runCacheJob(t, files, "a")
	if got := rec1.output(0, "system"); !strings.Contains(got, `cache miss: deps-a (no entry for the key or the restore keys "deps-")`) {
		t.Errorf("run 1, cache step log:\n%s", got)
	}
	if got := rec1.output(-1, "system"); !strings.Contains(got, `step "Deps cache": cache saved: deps-a (1 files, 2 B)`) {
		t.Errorf("run 1, end of the log:\n%s", got)
	}
	if got := rec1.output(2, "system"); !strings.Contains(got, "stored artifact report: 1 files, 2 B") {
		t.Errorf("run 1, store step log:\n%s", got)
	}

	rec2, _, fast := runCacheJob(t, files, "a")
	if got := rec2.output(0, "system"); !strings.Contains(got, "cache hit: deps-a (1 files, 2 B) in ") {
		t.Errorf("run 2, cache step log:\n%s", got)
	}
	if got := rec2.output(1, "stdout"); got != "cached: a\n" {
		t.Errorf("run 2, install step output %q", got)
	}
	if got := rec2.output(-1, "system"); strings.Contains(got, "cache saved") {
		t.Errorf("run 2 saved a key that was stored:\n%s", got)
	}
	if fast >= slow {
		t.Errorf("the dependent step took %s with the cache, %s without", fast, slow)
	}
	t.Logf("install step: %s on a miss, %s on a hit", slow, fast)

	rec3, _, _ := runCacheJob(t, files, "b")
	if got := rec3.output(0, "system"); !strings.Contains(got, `cache restored from prefix "deps-": deps-a (1 files, 2 B)`) {
		t.Errorf("run 3, cache step log:\n%s", got)
	}
	if got := rec3.output(1, "stdout"); got != "cached: a\n" {
		t.Errorf("run 3, install step output %q", got)
	}
	if got := rec3.output(-1, "system"); !strings.Contains(got, "cache saved: deps-b") {
		t.Errorf("run 3 did not save its new key:\n%s", got)
	}
	keys := []string{}
	for _, e := range files.caches {
		keys = append(keys, e.key)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "deps-a,deps-b" {
		t.Errorf("caches %q", keys)
	}
}

// TestCacheNotSavedOnFailure: a failed run saves no cache.
func TestCacheNotSavedOnFailure(t *testing.T) {
	files := &memFiles{}
	pl, err := pipeline.Parse("p.json", []byte(`{"steps": [
	  {"name": "c", "type": "cache-files", "key": "k", "fileNames": ["d"], "expiry": "1d"},
	  {"name": "fail", "run": "mkdir d; echo x > d/f; exit 3"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	res := Run(context.Background(), Job{Pipeline: pl, Dir: t.TempDir(), Files: files}, nil)
	if res.Status != StatusFailed || len(files.caches) != 0 {
		t.Fatalf("run %s, caches %d", res.Status, len(files.caches))
	}
}

// TestFilesStepRefusals: a link out of the workspace is refused in the step log;
// a downloadPath through a link out fails the step; no store fails the step.
func TestFilesStepRefusals(t *testing.T) {
	dir := t.TempDir()
	ws := filepath.Join(dir, "ws")
	os.MkdirAll(filepath.Join(ws, "out"), 0o755)
	os.Symlink("/", filepath.Join(ws, "out", "root"))
	os.Symlink(dir, filepath.Join(ws, "away"))
	os.WriteFile(filepath.Join(ws, "out", "ok"), []byte("ok"), 0o644)
	pl, err := pipeline.Parse("p.json", []byte(`{"steps": [
	  {"name": "s", "type": "store-files", "key": "a", "fileNames": ["out"], "expiry": "1h"},
	  {"name": "c", "type": "cache-files", "key": "k", "fileNames": ["out"], "downloadPath": "away/x", "expiry": "1h", "continueOnError": true}]}`))
	if err != nil {
		t.Fatal(err)
	}
	files := &memFiles{}
	rec := newRecorder(t)
	res := Run(context.Background(), Job{Pipeline: pl, Dir: ws, Files: files}, rec)
	if got := rec.output(0, "system"); !strings.Contains(got, "refused: out/root is a symbolic link out of the workspace (-> /)") || !strings.Contains(got, "1 files, 2 B, 1 refused") {
		t.Errorf("store step log:\n%s", got)
	}
	if res.Steps[1].Status != StatusFailed || !strings.Contains(res.Steps[1].Reason, `downloadPath "away/x"`) {
		t.Errorf("cache step: %+v", res.Steps[1])
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Error("a directory was made outside the checkout")
	}
	res = Run(context.Background(), Job{Pipeline: pl, Dir: ws}, nil)
	if res.Status != StatusFailed || !strings.Contains(res.Reason, "need a store of caches and artifacts") {
		t.Errorf("without a store: %s %s", res.Status, res.Reason)
	}
}
