package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/simpleci/simpleci/libs/forge"
)

// maxStderr bounds how much of git's stderr is kept for an error message.
const maxStderr = 4 << 10

// gitCmd is one git invocation.
type gitCmd struct {
	dir    string    // working directory; "" for the process's
	stdin  io.Reader // nil for none
	stdout io.Writer // nil to discard
	args   []string
	redact string // a repository string to replace by its redacted form in errors
	remote remote // for a command that connects to a URL repository: its pinning
}

// run executes git without a shell, under f.timeout (or ctx's earlier
// deadline), with a scrubbed environment. The error carries git's stderr; an
// *exec.ExitError stays reachable with errors.As.
func (f *Forge) run(ctx context.Context, c gitCmd) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	// Safety settings that hold whatever the repository's own config says.
	args := append([]string{
		"-c", "core.hooksPath=" + os.DevNull,
		"-c", "core.fsmonitor=false",
		"-c", "credential.helper=",
		"-c", "advice.detachedHead=false",
		"-c", "init.defaultBranch=main",
	}, c.remote.config...)
	args = append(args, c.args...)
	cmd := exec.CommandContext(ctx, f.git, args...)
	cmd.Dir = c.dir
	cmd.Env = f.environ(c.remote.env...)
	cmd.Stdin = c.stdin
	cmd.Stdout = c.stdout
	stderr := &limitedBuffer{max: maxStderr}
	cmd.Stderr = stderr
	setProcessGroup(cmd) // git starts helpers (upload-pack, remote-https, ssh); kill them all
	cmd.WaitDelay = 5 * time.Second

	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	msg := stderr.String()
	if c.redact != "" {
		msg = strings.ReplaceAll(msg, c.redact, redactRepo(c.redact))
	}
	msg = f.gitLine(msg)
	name := "git " + subcommand(c.args)
	if msg == "" {
		return fmt.Errorf("%s: %w", name, err)
	}
	return fmt.Errorf("%s: %w: %s", name, err, msg)
}

// maxGitLine bounds the part of git's stderr an error keeps.
const maxGitLine = 200

// absPathRE finds absolute paths in git's messages (after a space, a quote, "(" or "=").
var absPathRE = regexp.MustCompile(`(^|[\s'"(=])(/[^\s'"():,]*)`)

// gitLine makes git's stderr fit for an error that users see: its first "fatal:" or
// "error:" line (else its first line), credentials of any URL hidden, every absolute
// path outside the repository roots (a mirror, a workspace, a server file) replaced
// by "<server path>", control characters dropped and the length bounded.
func (f *Forge) gitLine(stderr string) string {
	var first, line string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if first == "" {
			first = l
		}
		if strings.HasPrefix(l, "fatal:") || strings.HasPrefix(l, "error:") {
			line = l
			break
		}
	}
	if line == "" {
		line = first
	}
	line = forge.Redact(line)
	line = absPathRE.ReplaceAllStringFunc(line, func(m string) string {
		lead, p := "", m
		if len(m) > 0 && m[0] != '/' {
			lead, p = m[:1], m[1:]
		}
		for _, root := range f.roots {
			if within(root, filepath.Clean(p)) {
				return m
			}
		}
		return lead + "<server path>"
	})
	line = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, line)
	return forge.Truncate(line, maxGitLine)
}

// subcommand names the git command for messages, skipping global options.
func subcommand(args []string) string {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return a
		}
	}
	return ""
}

// environ is git's whole environment: nothing of this process's leaks in
// except PATH, and the operator's Options.Env.
func (f *Forge) environ(pinned ...string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	env := []string{
		"PATH=" + path,
		"HOME=/nonexistent",
		"LC_ALL=C",
		"GIT_SSH_COMMAND=ssh -o BatchMode=yes",
	}
	env = append(env, f.env...)
	env = append(env, pinned...)
	// Last, so Options.Env cannot undo them (exec keeps the last of duplicate keys).
	return append(env,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=",
		"SSH_ASKPASS=",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_NO_REPLACE_OBJECTS=1",
		"GIT_ALLOW_PROTOCOL="+f.allowedProtocols(),
	)
}

func (f *Forge) allowedProtocols() string {
	var ps []string
	for _, p := range []string{"file", "https", "http", "ssh", "git"} {
		if f.protocols[p] {
			ps = append(ps, p)
		}
	}
	return strings.Join(ps, ":")
}

// exitedNonZero reports whether err is git having run and failed, as opposed
// to git not starting or being killed by the deadline.
func exitedNonZero(ctx context.Context, err error) bool {
	var exit *exec.ExitError
	return errors.As(err, &exit) && exit.Exited() && ctx.Err() == nil
}

func validEnv(kv string) bool {
	k, _, ok := strings.Cut(kv, "=")
	return ok && k != "" && !strings.ContainsRune(kv, 0)
}

// limitedBuffer keeps the first max bytes written and drops the rest, so a
// chatty or hostile git cannot grow memory without bound.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string { return b.buf.String() }

// cappedBuffer fails the write once more than max bytes arrive; git then dies
// of a broken pipe and the caller reports errTooMuch.
type cappedBuffer struct {
	buf bytes.Buffer
	max int64
}

var errTooMuch = errors.New("output exceeds the limit")

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if int64(b.buf.Len()+len(p)) > b.max {
		return 0, errTooMuch
	}
	return b.buf.Write(p)
}
