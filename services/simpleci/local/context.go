package local

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"time"
)

// gitInfo is what git says about the checkout in a directory.
type gitInfo struct {
	branch, ref, sha, top string
}

// gitTimeout bounds the one git call; a slow or hung git only costs the
// branch and sha.
const gitTimeout = 5 * time.Second

// readGit asks git, in one process, for the commit, the symbolic ref of
// HEAD and the top of the checkout. Anything git cannot say is left empty:
// no git installed, not a repository, a detached HEAD (no branch).
func readGit(dir string) gitInfo {
	ctx, cancel := context.WithTimeout(context.Background(), gitTimeout)
	defer cancel()
	// --symbolic-full-name prints "HEAD" for a detached HEAD; an empty
	// repository fails as a whole, which is fine.
	cmd := exec.CommandContext(ctx, "git", "rev-parse", "--show-toplevel", "HEAD", "--symbolic-full-name", "HEAD")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	out, err := cmd.Output()
	if err != nil {
		return gitInfo{}
	}
	lines := strings.Split(string(bytes.TrimSpace(out)), "\n")
	if len(lines) != 3 {
		return gitInfo{}
	}
	g := gitInfo{top: lines[0], sha: lines[1]}
	if ref := lines[2]; strings.HasPrefix(ref, "refs/") {
		g.ref = ref
		g.branch = strings.TrimPrefix(ref, "refs/heads/")
		if g.branch == ref {
			g.branch = ""
		}
	}
	return g
}

// buildContext is the context variable of a local run: what the scheduler
// would give a run of this checkout, then --event, then --context.
func buildContext(dir string, o *options, git func() gitInfo) map[string]any {
	ctx := map[string]any{
		"event": "push", "provider": "local", "repository": filepath.Base(dir),
		"branch": "", "ref": "", "sha": "", "actor": actor(), "run_id": "local", "run_number": "0",
	}
	if !o.contextHas("branch", "ref", "sha") {
		g := git()
		if g.top != "" {
			ctx["repository"] = filepath.Base(g.top)
		}
		ctx["branch"], ctx["ref"], ctx["sha"] = g.branch, g.ref, g.sha
	}
	if o.event != "" {
		ctx["event"] = o.event
	}
	for _, p := range o.context.list {
		ctx[p.key] = p.value
	}
	return ctx
}

// contextHas reports whether --context sets every one of keys, so that
// git need not be asked.
func (o *options) contextHas(keys ...string) bool {
	for _, k := range keys {
		found := false
		for _, p := range o.context.list {
			found = found || p.key == k
		}
		if !found {
			return false
		}
	}
	return true
}

func actor() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// envMap merges K=V flags, later ones winning.
func envMap(lists ...*kvFlag) map[string]string {
	out := map[string]string{}
	for _, l := range lists {
		if l == nil {
			continue
		}
		for _, p := range l.list {
			out[p.key] = p.value
		}
	}
	return out
}
