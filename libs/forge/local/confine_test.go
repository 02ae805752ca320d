package local_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/local"
)

// A path repository must lie under a repository root once symbolic links are resolved,
// and is refused (forge.ErrNotAllowed, or ErrInvalid for "..") everywhere it is used:
// CheckRepository, ReadFile, ResolveRef and Checkout.
func TestRepositoryRoots(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "repos")
	outside := filepath.Join(base, "elsewhere")
	os.MkdirAll(root, 0o755)
	os.MkdirAll(outside, 0o755)
	inside := newTestRepoAt(t, filepath.Join(root, "app"))
	foreign := newTestRepoAt(t, filepath.Join(outside, "other"))
	if err := os.Symlink(foreign.dir, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(root, filepath.Join(base, "link-to-root")); err != nil {
		t.Fatal(err)
	}
	// A repository inside the root whose .git file or object alternates lead out.
	gitfile := filepath.Join(root, "gitfile")
	writeFile(t, gitfile, ".git", "gitdir: "+filepath.Join(foreign.dir, ".git")+"\n")
	alt := filepath.Join(root, "alt.git")
	git(t, "", "init", "-q", "--bare", alt)
	writeFile(t, filepath.Join(alt, "objects", "info"), "alternates", filepath.Join(foreign.dir, ".git", "objects")+"\n")

	f := newForge(t, local.Options{LocalRoots: []string{root}})
	c := context.Background()
	canonical, reads, err := f.CheckRepository(c, inside.dir)
	if err != nil || len(reads) != 1 || reads[0] != filepath.Join(canonical, ".git") {
		t.Fatalf("repository under the root: %v, reads %v", err, reads)
	}
	// A root named through a symbolic link holds its target's repositories under
	// either name, and both name the same canonical repository.
	linked := newForge(t, local.Options{LocalRoots: []string{filepath.Join(base, "link-to-root")}})
	for _, p := range []string{filepath.Join(base, "link-to-root", "app"), inside.dir} {
		if via, _, err := linked.CheckRepository(c, p); err != nil || via != canonical {
			t.Fatalf("%s under a root named through a symbolic link: %q, %v; want %q", p, via, err, canonical)
		}
	}
	if _, err := f.ReadFile(c, inside.dir, inside.first, pipelinePath); err != nil {
		t.Fatalf("ReadFile under the root: %v", err)
	}

	for name, tt := range map[string]struct {
		repo string
		want error
		says string
	}{
		"/etc":                      {"/etc", forge.ErrNotAllowed, "not under a repository directory"},
		"outside the roots":         {foreign.dir, forge.ErrNotAllowed, "not under a repository directory"},
		"file URL outside":          {"file://" + foreign.dir, forge.ErrNotAllowed, "not under"},
		"symbolic link escaping":    {filepath.Join(root, "escape"), forge.ErrNotAllowed, "symbolic link"},
		"dot-dot":                   {root + "/../elsewhere/other", forge.ErrInvalid, `".."`},
		"the root itself":           {root, forge.ErrNotAllowed, "not under"},
		"missing under the root":    {filepath.Join(root, "nope"), forge.ErrNotFound, "does not exist"},
		"gitdir file leading out":   {gitfile, forge.ErrNotAllowed, "git directory outside"},
		"object alternates outside": {alt, forge.ErrNotAllowed, "object alternate outside"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := f.CheckRepository(c, tt.repo)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("CheckRepository(%s): %v; want %v saying %q", tt.repo, err, tt.want, tt.says)
			}
			if _, err := f.ReadFile(c, tt.repo, foreign.first, pipelinePath); !errors.Is(err, tt.want) {
				t.Errorf("ReadFile: %v, want %v", err, tt.want)
			}
			if _, err := f.ResolveRef(c, tt.repo, "main"); !errors.Is(err, tt.want) {
				t.Errorf("ResolveRef: %v, want %v", err, tt.want)
			}
			dir := filepath.Join(t.TempDir(), "ws")
			if err := f.Checkout(c, tt.repo, foreign.first, dir); !errors.Is(err, tt.want) {
				t.Errorf("Checkout: %v, want %v", err, tt.want)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("Checkout left %s behind", dir)
			}
		})
	}

	// A single allowed repository (the demo of `simpleci dev`) is allowed, its
	// neighbours are not.
	single := newForge(t, local.Options{LocalRoots: []string{}, LocalRepositories: []string{foreign.dir}})
	if _, err := single.ReadFile(c, foreign.dir, foreign.first, pipelinePath); err != nil {
		t.Fatalf("the allowed repository: %v", err)
	}
	if _, _, err := single.CheckRepository(c, outside); !errors.Is(err, forge.ErrNotAllowed) {
		t.Fatalf("the allowed repository's parent: %v", err)
	}

	// Without roots no path repository is allowed at all.
	none := newForge(t, local.Options{LocalRoots: []string{}})
	if _, _, err := none.CheckRepository(c, inside.dir); !errors.Is(err, forge.ErrNotAllowed) || !strings.Contains(err.Error(), "--local-repos") {
		t.Fatalf("no roots: %v", err)
	}
	if _, err := local.New(local.Options{LocalRoots: []string{"/"}}); err == nil {
		t.Fatal("the whole file system was accepted as a root")
	}
}

// URL repositories may not reach loopback, private, link-local or metadata
// addresses, also through a name, unless a network is allowed.
func TestRepositoryNetwork(t *testing.T) {
	f := newForge(t, local.Options{Protocols: []string{"https", "http", "ssh", "git"}, MirrorDir: t.TempDir()})
	c := context.Background()
	for _, repo := range []string{"https://127.0.0.1:9/x", "https://localhost/x", "http://169.254.169.254/latest/meta-data",
		"https://10.0.0.1/x", "https://[::1]/x", "ssh://git@127.0.0.1/x", "git://192.168.1.1/x", "https://[::ffff:127.0.0.1]/x"} {
		if _, _, err := f.CheckRepository(c, repo); !errors.Is(err, forge.ErrNotAllowed) || !strings.Contains(err.Error(), "--allow-repo-network") {
			t.Errorf("CheckRepository(%s): %v, want ErrNotAllowed", repo, err)
		}
		if _, err := f.ResolveRef(c, repo, "main"); !errors.Is(err, forge.ErrNotAllowed) {
			t.Errorf("ResolveRef(%s): %v, want ErrNotAllowed", repo, err)
		}
		if _, err := f.ReadFile(c, repo, strings.Repeat("a", 40), pipelinePath); !errors.Is(err, forge.ErrNotAllowed) {
			t.Errorf("ReadFile(%s): %v, want ErrNotAllowed", repo, err)
		}
		if err := f.Checkout(c, repo, strings.Repeat("a", 40), filepath.Join(t.TempDir(), "ws")); !errors.Is(err, forge.ErrNotAllowed) {
			t.Errorf("Checkout(%s): %v, want ErrNotAllowed", repo, err)
		}
	}
	if _, _, err := f.CheckRepository(c, "ssh://h;touch${IFS}x/r"); !errors.Is(err, forge.ErrInvalid) {
		t.Errorf("a host with shell characters: %v, want ErrInvalid", err)
	}
}

// An error built from git's stderr keeps one short line: no credentials, no server
// paths outside the repository roots, no control characters.
func TestGitLineScrubbed(t *testing.T) {
	root := t.TempDir()
	f := newForge(t, local.Options{LocalRoots: []string{root}})
	stderr := "remote: Enumerating objects\nfatal: unable to access 'https://u:hunter2@example.com/x/': could not read /var/lib/simpleci/mirrors/ab.git/config and " +
		root + "/app/.git\x1b[31m " + strings.Repeat("x", 500) + "\nerror: more\n"
	got := f.GitLine(stderr)
	for _, bad := range []string{"hunter2", "/var/lib/simpleci", "\x1b", "remote:", "error: more"} {
		if strings.Contains(got, bad) {
			t.Errorf("%q kept %q", got, bad)
		}
	}
	if !strings.Contains(got, "<server path>") || !strings.Contains(got, root+"/app") || len(got) > 210 {
		t.Errorf("%q: want the server path replaced, the repository path kept, at most ~200 bytes", got)
	}
}

func newTestRepoAt(t *testing.T, dir string) testRepo {
	t.Helper()
	git(t, "", "init", "-q", dir)
	writeFile(t, dir, pipelinePath, `{"version":1}`)
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", "first")
	return testRepo{dir: dir, first: git(t, dir, "rev-parse", "HEAD")}
}
