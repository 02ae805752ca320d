package blobstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a controlled clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// testStore checks the behaviour every Store shares.
func testStore(t *testing.T, s Store, c *clock) {
	ctx := context.Background()
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	exp := c.now().Add(time.Hour)

	info, err := s.Put(ctx, "cache/p1/main/deps-a", bytes.NewReader(data), PutOptions{Expires: exp})
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) || len(info.SHA256) != 64 {
		t.Fatalf("info %+v", info)
	}
	rc, got, err := s.Get(ctx, "cache/p1/main/deps-a")
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(back, data) || got.SHA256 != info.SHA256 {
		t.Fatalf("read back %d bytes, err %v", len(back), err)
	}

	t.Run("keys are immutable", func(t *testing.T) {
		_, err := s.Put(ctx, "cache/p1/main/deps-a", strings.NewReader("other"), PutOptions{Expires: exp})
		if !errors.Is(err, ErrExists) {
			t.Fatalf("second put: %v", err)
		}
	})
	t.Run("too large stores nothing", func(t *testing.T) {
		_, err := s.Put(ctx, "cache/p1/main/big", bytes.NewReader(data), PutOptions{Expires: exp, MaxBytes: 1 << 20})
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("put: %v", err)
		}
		if _, err := s.Stat(ctx, "cache/p1/main/big"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("stat after a refused put: %v", err)
		}
	})
	t.Run("list by prefix, newest first", func(t *testing.T) {
		c.add(time.Second)
		if _, err := s.Put(ctx, "cache/p1/main/deps-b", strings.NewReader("b"), PutOptions{Expires: exp}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, "cache/p2/main/deps-c", strings.NewReader("c"), PutOptions{Expires: exp}); err != nil {
			t.Fatal(err)
		}
		infos, err := s.List(ctx, "cache/p1/main/deps-")
		if err != nil || len(infos) != 2 || infos[0].Key != "cache/p1/main/deps-b" || infos[1].Key != "cache/p1/main/deps-a" {
			t.Fatalf("list: %+v %v", infos, err)
		}
	})
	t.Run("invalid keys", func(t *testing.T) {
		for _, k := range []string{"", "/a", "a/../b", "a//b", "a/"} {
			if _, err := s.Put(ctx, k, strings.NewReader("x"), PutOptions{Expires: exp}); err == nil {
				t.Errorf("put %q accepted", k)
			}
		}
	})
	t.Run("expiry and sweep", func(t *testing.T) {
		if _, err := s.Put(ctx, "artifacts/p1/r1/short", strings.NewReader("x"), PutOptions{Expires: c.now().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		c.add(2 * time.Minute)
		if _, _, err := s.Get(ctx, "artifacts/p1/r1/short"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get after expiry: %v", err)
		}
		n, err := s.Sweep(ctx, c.now())
		if err != nil || n != 1 {
			t.Fatalf("sweep: %d %v", n, err)
		}
		if _, err := s.Stat(ctx, "cache/p1/main/deps-a"); err != nil {
			t.Fatalf("an unexpired object swept: %v", err)
		}
	})
	t.Run("evict oldest over the quota", func(t *testing.T) {
		gone, err := Evict(ctx, s, "cache/p1/", 10, "")
		if err != nil || len(gone) != 1 || gone[0].Key != "cache/p1/main/deps-a" {
			t.Fatalf("evicted %+v %v", gone, err)
		}
		if _, err := s.Stat(ctx, "cache/p1/main/deps-b"); err != nil {
			t.Fatalf("the newest entry was evicted: %v", err)
		}
		if _, err := s.Stat(ctx, "cache/p2/main/deps-c"); err != nil {
			t.Fatalf("another project's entry was evicted: %v", err)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := s.Delete(ctx, "cache/p1/main/deps-b"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "cache/p1/main/deps-b"); err != nil {
			t.Fatalf("delete twice: %v", err)
		}
		if _, _, err := s.Get(ctx, "cache/p1/main/deps-b"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
	})
}

func TestDisk(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	s, err := NewDisk(dir, c.now)
	if err != nil {
		t.Fatal(err)
	}
	testStore(t, s, c)

	t.Run("a corrupted object fails its checksum on read", func(t *testing.T) {
		ctx := context.Background()
		if _, err := s.Put(ctx, "artifacts/p1/r2/a", strings.NewReader("the bytes stored"), PutOptions{Expires: c.now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		data, _ := s.paths("artifacts/p1/r2/a")
		if err := os.WriteFile(data, []byte("the bytes STORED"), 0o600); err != nil {
			t.Fatal(err)
		}
		rc, _, err := s.Get(ctx, "artifacts/p1/r2/a")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.ReadAll(rc); !errors.Is(err, ErrChecksum) {
			t.Fatalf("read of a corrupted object: %v", err)
		}
	})
	t.Run("no temporary files left", func(t *testing.T) {
		left, _ := filepath.Glob(filepath.Join(dir, "objects", "*.tmp*"))
		if len(left) > 0 {
			t.Fatalf("left: %q", left)
		}
	})
}

func TestEscapeSegment(t *testing.T) {
	for _, s := range []string{"deps-main", "a/b", "..", "%2F", "feature/x y"} {
		e := EscapeSegment(s)
		if strings.Contains(e, "/") || e == ".." || e == "." {
			t.Errorf("EscapeSegment(%q) = %q", s, e)
		}
		if back, err := UnescapeSegment(e); err != nil || back != s {
			t.Errorf("UnescapeSegment(%q) = %q %v", e, back, err)
		}
	}
	if !strings.HasPrefix(EscapeSegment("deps-main-1"), EscapeSegment("deps-")) {
		t.Error("escaped prefixes are not prefixes")
	}
}
