package service

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestJobsDir: job directories go to the work directory when the jobs' users can reach
// it, else to a root-owned 0711 directory of the runner's own under the temp dir; a
// directory there that someone else made is refused.
func TestJobsDir(t *testing.T) {
	if os.Geteuid() != 0 {
		dir := t.TempDir()
		got, why, err := jobsDirFor(dir)
		if err != nil || why != "" || got != dir {
			t.Fatalf("a runner that is not root: %q %q %v, want the work dir itself", got, why, err)
		}
		t.Skip("the rest needs root (the jobs then run as other users)")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // the fallback goes here
	// t.TempDir's parent is private (0700): open it, as a runner's host would be.
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	open := filepath.Join(tmp, "open", "work")
	if err := os.MkdirAll(open, 0o711); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(open), 0o755)
	if got, why, err := jobsDirFor(open); err != nil || why != "" || got != open {
		t.Fatalf("a reachable work dir: %q %q %v, want it", got, why, err)
	}

	private := filepath.Join(tmp, "private", "work")
	if err := os.MkdirAll(private, 0o711); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(private), 0o700)
	got, why, err := jobsDirFor(private)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(got) != tmp || !strings.HasPrefix(filepath.Base(got), "simpleci-jobs-") || !strings.Contains(why, filepath.Dir(private)) {
		t.Fatalf("a private work dir: %q (%s), want a directory under %s", got, why, tmp)
	}
	fi, err := os.Lstat(got)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o711 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("fallback %s: %v %v", got, fi.Mode(), err)
	}
	if again, _, err := jobsDirFor(private); err != nil || again != got {
		t.Fatalf("the fallback changes between starts: %q then %q (%v)", got, again, err)
	}

	// Someone else made it first: refused.
	if err := os.Remove(got); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(got, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(got, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, _, err := jobsDirFor(private); err == nil || !strings.Contains(err.Error(), "not a directory owned by root") {
		t.Fatalf("a fallback owned by another user: %v, want refused", err)
	}
}
