package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/simpleci/simpleci/libs/forge"
)

// ReadFile returns the file at path in commit sha. It refuses a malformed sha
// or a path that is absolute or climbs with ".." (forge.ErrInvalid) before git
// runs, returns forge.ErrNotFound for a missing commit or file (or a directory),
// and forge.ErrTooLarge beyond Options.MaxFileSize.
func (f *Forge) ReadFile(ctx context.Context, repo, sha, path string) ([]byte, error) {
	sha = strings.ToLower(sha)
	if err := forge.ValidateSHA(sha); err != nil {
		return nil, err
	}
	if err := forge.ValidatePath(path); err != nil {
		return nil, err
	}
	r, err := f.parseRepo(repo)
	if err != nil {
		return nil, err
	}
	dir, err := f.commitDir(ctx, r, sha)
	if err != nil {
		return nil, err
	}

	object := sha + ":" + path
	var info bytes.Buffer
	err = f.run(ctx, gitCmd{
		stdin:  strings.NewReader(object + "\n"),
		stdout: &info,
		args:   []string{"--git-dir=" + dir, "cat-file", "--batch-check=%(objecttype) %(objectsize)"},
	})
	if err != nil {
		return nil, fmt.Errorf("read %s at %s in %s: %w", path, sha, r, err)
	}
	kind, sizeText, _ := strings.Cut(strings.TrimSpace(info.String()), " ")
	if kind != "blob" {
		if strings.HasSuffix(sizeText, "missing") || kind == "" {
			return nil, fmt.Errorf("%w: no file %s at commit %s of %s", forge.ErrNotFound, path, sha, r)
		}
		return nil, fmt.Errorf("%w: %s at commit %s of %s is a %s, not a file", forge.ErrNotFound, path, sha, r, kind)
	}
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("read %s at %s in %s: unexpected git output %q", path, sha, r, info.String())
	}
	if size > f.maxFileSize {
		return nil, fmt.Errorf("%w: %s at commit %s is %d bytes, the limit is %d", forge.ErrTooLarge, path, sha, size, f.maxFileSize)
	}

	out := &cappedBuffer{max: f.maxFileSize}
	err = f.run(ctx, gitCmd{stdout: out, args: []string{"--git-dir=" + dir, "cat-file", "blob", object}})
	if errors.Is(err, errTooMuch) {
		return nil, fmt.Errorf("%w: %s at commit %s is larger than %d bytes", forge.ErrTooLarge, path, sha, f.maxFileSize)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s at %s in %s: %w", path, sha, r, err)
	}
	return out.buf.Bytes(), nil
}

// ResolveRef returns the commit that ref names: a full ref ("refs/heads/main"),
// a branch or tag name (a branch wins over a tag for a URL repository; git's
// own rules apply for a path), "HEAD", or a full commit id (checked to exist).
// Annotated tags resolve to the commit they tag.
func (f *Forge) ResolveRef(ctx context.Context, repo, ref string) (string, error) {
	if err := forge.ValidateRef(ref); err != nil {
		return "", err
	}
	r, err := f.parseRepo(repo)
	if err != nil {
		return "", err
	}
	if lower := strings.ToLower(ref); forge.ValidateSHA(lower) == nil {
		if _, err := f.commitDir(ctx, r, lower); err != nil {
			return "", err
		}
		return lower, nil
	}
	notFound := fmt.Errorf("%w: no branch, tag or commit %q in repository %s", forge.ErrNotFound, ref, r)

	if r.path != "" {
		dir, err := f.gitDir(r)
		if err != nil {
			return "", err
		}
		var out bytes.Buffer
		err = f.run(ctx, gitCmd{stdout: &out, args: []string{"--git-dir=" + dir, "rev-parse", "-q", "--verify", "--end-of-options", ref + "^{commit}"}})
		if exitedNonZero(ctx, err) {
			return "", notFound
		}
		if err != nil {
			return "", fmt.Errorf("resolve %s in %s: %w", ref, r, err)
		}
		return checkedSHA(out.String())
	}

	candidates := []string{"refs/heads/" + ref, "refs/tags/" + ref}
	if ref == "HEAD" || strings.HasPrefix(ref, "refs/") {
		candidates = []string{ref}
	}
	rem, err := f.remote(ctx, r)
	if err != nil {
		return "", err
	}
	args := []string{"ls-remote", "-q", "--", rem.url}
	for _, c := range candidates {
		args = append(args, c, c+"^{}")
	}
	var out bytes.Buffer
	if err := f.run(ctx, gitCmd{stdout: &out, redact: r.url, remote: rem, args: args}); err != nil {
		return "", fmt.Errorf("resolve %s in %s: %w", ref, r, err)
	}
	found := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if sha, name, ok := strings.Cut(line, "\t"); ok {
			found[name] = sha
		}
	}
	for _, c := range candidates {
		if sha, ok := found[c+"^{}"]; ok {
			return checkedSHA(sha)
		}
		if sha, ok := found[c]; ok {
			return checkedSHA(sha)
		}
	}
	return "", notFound
}

// CommitMessage returns the message of commit sha (git cat-file: the commit
// object's text after its header), bounded by forge.BoundCommitMessage.
func (f *Forge) CommitMessage(ctx context.Context, repo, sha string) (string, error) {
	sha = strings.ToLower(sha)
	if err := forge.ValidateSHA(sha); err != nil {
		return "", err
	}
	r, err := f.parseRepo(repo)
	if err != nil {
		return "", err
	}
	dir, err := f.commitDir(ctx, r, sha)
	if err != nil {
		return "", err
	}
	// A commit object is its header and message; signatures and long messages
	// can make it large: keep what the bounded message needs.
	out := &cappedBuffer{max: 64 << 10}
	err = f.run(ctx, gitCmd{stdout: out, args: []string{"--git-dir=" + dir, "cat-file", "commit", sha}})
	if err != nil && !errors.Is(err, errTooMuch) {
		return "", fmt.Errorf("read commit %s in %s: %w", sha, r, err)
	}
	_, msg, _ := strings.Cut(out.buf.String(), "\n\n")
	return forge.BoundCommitMessage(msg), nil
}

func checkedSHA(s string) (string, error) {
	s = strings.TrimSpace(s)
	if err := forge.ValidateSHA(s); err != nil {
		return "", fmt.Errorf("git printed %q where a commit id belongs: %w", s, err)
	}
	return s, nil
}

// Checkout makes dir (empty or not yet existing) a fresh git working tree with
// HEAD detached at commit sha. It fetches just that commit (depth 1) and falls
// back to fetching every branch and tag when the server refuses a fetch by id.
// No remote is configured in dir, so a URL's credentials do not stay behind.
// On failure dir is left as empty as it was found.
func (f *Forge) Checkout(ctx context.Context, repo, sha, dir string) (err error) {
	sha = strings.ToLower(sha)
	if err := forge.ValidateSHA(sha); err != nil {
		return err
	}
	r, err := f.parseRepo(repo)
	if err != nil {
		return err
	}
	if dir == "" {
		return fmt.Errorf("%w: checkout directory is empty", forge.ErrInvalid)
	}
	source := remote{url: r.source()}
	if r.path != "" {
		if _, err := f.gitDir(r); err != nil {
			return err
		}
	} else if source, err = f.remote(ctx, r); err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("checkout directory %s: %w", dir, err)
	}
	entries, err := os.ReadDir(abs)
	existed := err == nil
	switch {
	case existed && len(entries) > 0:
		return fmt.Errorf("%w: checkout directory %s is not empty", forge.ErrInvalid, abs)
	case !existed && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("checkout directory %s: %w", abs, err)
	case !existed:
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return fmt.Errorf("create checkout directory: %w", err)
		}
	}
	defer func() {
		if err != nil {
			cleanDir(abs, !existed)
		}
	}()

	git := func(args ...string) error {
		return f.run(ctx, gitCmd{dir: abs, redact: r.raw, args: args})
	}
	fetch := func(args ...string) error {
		return f.run(ctx, gitCmd{dir: abs, redact: r.raw, remote: source, args: args})
	}
	if err := git("init", "-q"); err != nil {
		return fmt.Errorf("checkout %s: %w", sha, err)
	}
	if shallowErr := fetch("fetch", "-q", "--no-tags", "--depth=1", "--", source.url, sha); shallowErr != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("fetch %s from %s: %w", sha, r, shallowErr)
		}
		if err := fetch("fetch", "-q", "--no-tags", "--", source.url,
			"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"); err != nil {
			return fmt.Errorf("fetch %s from %s: %w (fetching the commit alone failed too: %v)", sha, r, err, shallowErr)
		}
		ok, err := f.hasCommit(ctx, filepath.Join(abs, ".git"), sha)
		if err != nil {
			return fmt.Errorf("fetch %s from %s: %w", sha, r, err)
		}
		if !ok {
			return fmt.Errorf("%w: commit %s is not in repository %s", forge.ErrNotFound, sha, r)
		}
	}
	if err := git("checkout", "-q", "--detach", sha, "--"); err != nil {
		return fmt.Errorf("check out %s: %w", sha, err)
	}
	return nil
}

// cleanDir empties dir, and removes it too when Checkout created it.
func cleanDir(dir string, remove bool) {
	if remove {
		_ = os.RemoveAll(dir)
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}
