package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/simpleci/simpleci/libs/forge"
)

const maxRepoLength = 4096

// repository is a parsed repo argument: exactly one of path and url is set.
type repository struct {
	raw   string // as the caller gave it, for redaction
	path  string // absolute path of a repository on this machine, symbolic links resolved
	shown string // the path as the caller gave it (cleaned), for messages
	url   string // a remote URL, read through a mirror
}

// String is the repository for messages, with any credentials in a URL hidden.
func (r repository) String() string {
	if r.path != "" {
		return r.shown
	}
	return redactRepo(r.url)
}

// source is what git fetch is given for a path repository.
func (r repository) source() string {
	if r.path != "" {
		return r.path
	}
	return r.url
}

// parseRepo accepts an absolute path, a file:// URL (treated as its path) or
// a URL of an allowed transport, and refuses anything git could mistake for an
// option, relative paths (they would depend on the working directory) and
// scp-like "host:path" addresses (write them as ssh:// URLs). A path must lie
// under the repository roots (confine); a URL's host is checked when git is
// about to connect (remote).
func (f *Forge) parseRepo(repo string) (repository, error) {
	bad := func(why string) (repository, error) {
		return repository{}, fmt.Errorf("%w: repository %q %s", forge.ErrInvalid, redactRepo(repo), why)
	}
	switch {
	case repo == "":
		return repository{}, fmt.Errorf("%w: repository is empty", forge.ErrInvalid)
	case len(repo) > maxRepoLength:
		return bad(fmt.Sprintf("is longer than %d bytes", maxRepoLength))
	case strings.HasPrefix(repo, "-"):
		return bad(`starts with "-"`)
	}
	for i := 0; i < len(repo); i++ {
		if c := repo[i]; c < 0x20 || c == 0x7f {
			return bad("contains a control character")
		}
	}
	path := repo
	if strings.Contains(repo, "://") {
		u, err := url.Parse(repo)
		if err != nil {
			return bad("is not a valid URL")
		}
		scheme := strings.ToLower(u.Scheme)
		if !f.protocols[scheme] {
			return bad(fmt.Sprintf("uses the transport %q, which is not allowed (allowed: %s)", scheme, strings.ReplaceAll(f.allowedProtocols(), ":", ", ")))
		}
		if scheme != "file" {
			if u.Host == "" || strings.HasPrefix(u.Host, "-") {
				return bad("has no host")
			}
			if !validHost(u.Hostname()) {
				return bad("has a host name with characters no host name has")
			}
			return repository{raw: repo, url: repo}, nil
		}
		if u.Host != "" && u.Host != "localhost" {
			return bad("is a file:// URL naming another host")
		}
		if !filepath.IsAbs(u.Path) {
			return bad("is a file:// URL without an absolute path")
		}
		path = u.Path
	} else if !filepath.IsAbs(repo) {
		return bad("is neither an absolute path nor a URL (write host:path as ssh://host/path)")
	}
	if !f.protocols["file"] {
		return bad(`is a path, but the "file" transport is not allowed`)
	}
	if slices.Contains(strings.Split(path, "/"), "..") {
		return bad(`has a ".." component: give the path without it`)
	}
	shown := filepath.Clean(path)
	real, err := f.confine(shown)
	if err != nil {
		return repository{}, err
	}
	return repository{raw: repo, path: real, shown: shown}, nil
}

// validHost reports whether h is a DNS name or an address literal: git hands it
// to ssh, curl and its own transport, so nothing else may pass.
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return !strings.HasPrefix(h, "-")
}

// CheckRepository checks a repository as a project would be bound to it, without
// reading it: a path must exist under the repository roots (symbolic links
// resolved) and is returned in its canonical form, so that two spellings of one
// repository compare equal, with every directory git would read its objects from
// (its git directory, a common directory, alternates; a symbolic link may make
// them another repository's); a URL's host must resolve to allowed addresses
// only. Errors wrap forge.ErrInvalid, forge.ErrNotAllowed or forge.ErrNotFound
// and never say more about the file system than whether the path is allowed.
func (f *Forge) CheckRepository(ctx context.Context, repo string) (canonical string, reads []string, err error) {
	r, err := f.parseRepo(repo)
	if err != nil {
		return "", nil, err
	}
	if r.path != "" {
		_, reads, err := f.gitDirReads(r)
		if err != nil {
			return "", nil, err
		}
		return r.path, reads, nil
	}
	if _, err := f.remote(ctx, r); err != nil {
		return "", nil, err
	}
	return r.raw, nil, nil
}

// confine returns the canonical form (symbolic links resolved) of an absolute,
// clean path that lies strictly inside a repository root, or an error wrapping
// forge.ErrNotAllowed. Nothing outside the roots is looked at: a path not under a
// root (as written) is refused before the file system is asked, so the answer
// says nothing about what exists elsewhere.
func (f *Forge) confine(p string) (string, error) {
	if len(f.roots) == 0 && len(f.repos) == 0 {
		return "", fmt.Errorf("%w: repository %s: this server allows no repository paths (the operator names directories with --local-repos)", forge.ErrNotAllowed, p)
	}
	outside := fmt.Errorf("%w: repository %s is not under a repository directory of this server (the operator names them with --local-repos)", forge.ErrNotAllowed, p)
	var realRoots, realRepos []string
	under := false
	for _, root := range f.roots {
		real, err := filepath.EvalSymlinks(root)
		if err != nil {
			continue // a root that does not exist holds nothing
		}
		realRoots = append(realRoots, real)
		under = under || within(root, p) || within(real, p)
	}
	for _, repo := range f.repos {
		real, err := filepath.EvalSymlinks(repo)
		if err != nil {
			continue
		}
		realRepos = append(realRepos, real)
		under = under || p == repo || p == real || within(real, p) || within(repo, p)
	}
	if !under {
		return "", outside
	}
	real, err := filepath.EvalSymlinks(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: repository %s does not exist", forge.ErrNotFound, p)
	}
	if err != nil {
		return "", fmt.Errorf("%w: repository %s cannot be read", forge.ErrNotFound, p)
	}
	for _, root := range realRoots {
		if within(root, real) {
			return real, nil
		}
	}
	for _, repo := range realRepos {
		if real == repo || within(repo, real) { // its .git directory is within it
			return real, nil
		}
	}
	return "", fmt.Errorf("%w: repository %s leads out of the repository directories through a symbolic link", forge.ErrNotAllowed, p)
}

// within reports whether p lies strictly inside dir (both absolute and clean).
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// gitDir returns the git directory of a path repository: path/.git for a
// repository with a working tree (following a "gitdir:" file), else path itself
// (a bare repository). A git directory, a common directory (of a worktree) or an
// object alternate that leads out of the repository roots is refused: each would
// read another repository's objects.
func (f *Forge) gitDir(r repository) (string, error) {
	dir, _, err := f.gitDirReads(r)
	return dir, err
}

// gitDirReads is gitDir that also returns every directory git reads objects from
// (the canonical git directory, a common directory, the alternates).
func (f *Forge) gitDirReads(r repository) (string, []string, error) {
	dir, err := gitDirOf(r)
	if err != nil {
		return "", nil, err
	}
	leads := func(what string) error {
		return fmt.Errorf("%w: repository %s has a %s outside the repository directories", forge.ErrNotAllowed, r, what)
	}
	real, err := f.confine(dir)
	if errors.Is(err, forge.ErrNotAllowed) {
		return "", nil, leads("git directory")
	}
	if err != nil {
		return "", nil, err
	}
	reads := []string{real}
	if b, err := os.ReadFile(filepath.Join(real, "commondir")); err == nil {
		common := strings.TrimSpace(string(b))
		if !filepath.IsAbs(common) {
			common = filepath.Join(real, common)
		}
		c, err := f.confine(filepath.Clean(common))
		if err != nil {
			return "", nil, leads("common git directory")
		}
		reads = append(reads, c)
	}
	if b, err := os.ReadFile(filepath.Join(real, "objects", "info", "alternates")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if !filepath.IsAbs(line) {
				line = filepath.Join(real, "objects", line)
			}
			a, err := f.confine(filepath.Clean(line))
			if err != nil {
				return "", nil, leads("object alternate")
			}
			reads = append(reads, a)
		}
	}
	return real, reads, nil
}

func gitDirOf(r repository) (string, error) {
	st, err := os.Stat(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: repository %s does not exist", forge.ErrNotFound, r)
	}
	if err != nil {
		return "", fmt.Errorf("repository %s: %w", r, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%w: repository %s is not a directory", forge.ErrNotFound, r)
	}
	dotGit := filepath.Join(r.path, ".git")
	st, err = os.Stat(dotGit)
	switch {
	case err == nil && st.IsDir():
		return dotGit, nil
	case err == nil && st.Mode().IsRegular():
		b, err := os.ReadFile(dotGit)
		if err != nil {
			return "", fmt.Errorf("repository %s: %w", r, err)
		}
		dir, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir: ")
		if !ok {
			return "", fmt.Errorf("%w: repository %s has a .git file without a gitdir line", forge.ErrNotFound, r)
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(r.path, dir)
		}
		return filepath.Clean(dir), nil
	default:
		return r.path, nil
	}
}

// hasCommit reports whether commit sha is in the repository at dir.
func (f *Forge) hasCommit(ctx context.Context, dir, sha string) (bool, error) {
	err := f.run(ctx, gitCmd{args: []string{"--git-dir=" + dir, "cat-file", "-e", sha + "^{commit}"}})
	if err == nil {
		return true, nil
	}
	if exitedNonZero(ctx, err) {
		return false, nil
	}
	return false, err
}

// commitDir returns a git directory that holds commit sha: the repository
// itself for a path, the mirror (fetched when the commit is not there yet) for
// a URL. ErrNotFound when the commit does not exist.
func (f *Forge) commitDir(ctx context.Context, r repository, sha string) (string, error) {
	notFound := fmt.Errorf("%w: commit %s is not in repository %s", forge.ErrNotFound, sha, r)
	if r.path != "" {
		dir, err := f.gitDir(r)
		if err != nil {
			return "", err
		}
		ok, err := f.hasCommit(ctx, dir, sha)
		if err != nil {
			return "", fmt.Errorf("look up commit %s in %s: %w", sha, r, err)
		}
		if !ok {
			return "", notFound
		}
		return dir, nil
	}

	dir, unlock, err := f.mirror(ctx, r)
	if err != nil {
		return "", err
	}
	defer unlock()
	if ok, err := f.hasCommit(ctx, dir, sha); err != nil || ok {
		return dir, err
	}
	// Refresh every branch and tag first; then ask for the commit by id, which
	// servers allow for any reachable commit (protocol v2) or refuse.
	rem, err := f.remote(ctx, r)
	if err != nil {
		return "", err
	}
	if err := f.run(ctx, gitCmd{redact: r.url, remote: rem, args: []string{"--git-dir=" + dir, "fetch", "-q", "--prune", "--no-tags", "--", rem.url,
		"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"}}); err != nil {
		return "", fmt.Errorf("update mirror of %s: %w", r, err)
	}
	if ok, err := f.hasCommit(ctx, dir, sha); err != nil || ok {
		return dir, err
	}
	_ = f.run(ctx, gitCmd{redact: r.url, remote: rem, args: []string{"--git-dir=" + dir, "fetch", "-q", "--no-tags", "--", rem.url,
		sha + ":refs/simpleci/commits/" + sha}})
	ok, err := f.hasCommit(ctx, dir, sha)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", notFound
	}
	return dir, nil
}

// mirror returns the bare mirror of a URL repository, created on first use,
// locked against concurrent fetches by this Forge until unlock is called.
func (f *Forge) mirror(ctx context.Context, r repository) (dir string, unlock func(), err error) {
	if f.mirrorDir == "" {
		return "", nil, fmt.Errorf("local forge: reading URL repository %s needs a mirror directory (Options.MirrorDir)", r)
	}
	sum := sha256.Sum256([]byte(r.url))
	dir, err = filepath.Abs(filepath.Join(f.mirrorDir, hex.EncodeToString(sum[:16])+".git"))
	if err != nil {
		return "", nil, err
	}

	f.mirrorsMu.Lock()
	sem, ok := f.mirrors[dir]
	if !ok {
		sem = make(chan struct{}, 1)
		f.mirrors[dir] = sem
	}
	f.mirrorsMu.Unlock()
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return "", nil, ctx.Err()
	}
	unlock = func() { <-sem }

	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		if err := os.MkdirAll(f.mirrorDir, 0o700); err != nil {
			unlock()
			return "", nil, fmt.Errorf("create mirror directory: %w", err)
		}
		if err := f.run(ctx, gitCmd{args: []string{"init", "-q", "--bare", "--", dir}}); err != nil {
			unlock()
			return "", nil, fmt.Errorf("create mirror of %s: %w", r, err)
		}
	}
	return dir, unlock, nil
}

// redactRepo hides the user name, password or token of a repository URL (also
// an scp-like "user:token@host:path"), see forge.Redact.
func redactRepo(s string) string { return forge.Redact(s) }
