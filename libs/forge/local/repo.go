package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/simpleci/simpleci/libs/forge"
)

const maxRepoLength = 4096

// repository is a parsed repo argument: exactly one of path and url is set.
type repository struct {
	raw  string // as the caller gave it, for redaction
	path string // absolute path of a repository on this machine
	url  string // a remote URL, read through a mirror
}

// String is the repository for messages, with any credentials in a URL hidden.
func (r repository) String() string {
	if r.path != "" {
		return r.path
	}
	return redactRepo(r.url)
}

// source is what git fetch and ls-remote are given.
func (r repository) source() string {
	if r.path != "" {
		return r.path
	}
	return r.url
}

// parseRepo accepts an absolute path, a file:// URL (treated as its path) or
// a URL of an allowed transport, and refuses anything git could mistake for an
// option, relative paths (they would depend on the working directory) and
// scp-like "host:path" addresses (write them as ssh:// URLs).
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
	if strings.Contains(repo, "://") {
		u, err := url.Parse(repo)
		if err != nil {
			return bad("is not a valid URL")
		}
		scheme := strings.ToLower(u.Scheme)
		if !f.protocols[scheme] {
			return bad(fmt.Sprintf("uses the transport %q, which is not allowed (allowed: %s)", scheme, strings.ReplaceAll(f.allowedProtocols(), ":", ", ")))
		}
		if scheme == "file" {
			if u.Host != "" && u.Host != "localhost" {
				return bad("is a file:// URL naming another host")
			}
			if !filepath.IsAbs(u.Path) {
				return bad("is a file:// URL without an absolute path")
			}
			return repository{raw: repo, path: filepath.Clean(u.Path)}, nil
		}
		if u.Host == "" || strings.HasPrefix(u.Host, "-") {
			return bad("has no host")
		}
		return repository{raw: repo, url: repo}, nil
	}
	if filepath.IsAbs(repo) {
		if !f.protocols["file"] {
			return bad(`is a path, but the "file" transport is not allowed`)
		}
		return repository{raw: repo, path: filepath.Clean(repo)}, nil
	}
	return bad("is neither an absolute path nor a URL (write host:path as ssh://host/path)")
}

// gitDir returns the git directory of a path repository: path/.git for a
// repository with a working tree (following a "gitdir:" file), else path itself
// (a bare repository).
func gitDir(r repository) (string, error) {
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
		dir, err := gitDir(r)
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
	if err := f.run(ctx, gitCmd{redact: r.url, args: []string{"--git-dir=" + dir, "fetch", "-q", "--prune", "--no-tags", "--", r.url,
		"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"}}); err != nil {
		return "", fmt.Errorf("update mirror of %s: %w", r, err)
	}
	if ok, err := f.hasCommit(ctx, dir, sha); err != nil || ok {
		return dir, err
	}
	_ = f.run(ctx, gitCmd{redact: r.url, args: []string{"--git-dir=" + dir, "fetch", "-q", "--no-tags", "--", r.url,
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

// redactRepo hides the password or token of a URL with credentials.
func redactRepo(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); !has {
		u.User = url.User("xxxxx") // a lone user part is often the token itself
	}
	return u.Redacted()
}
