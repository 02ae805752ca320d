package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/simpleci/simpleci/libs/engine/archive"
	"github.com/simpleci/simpleci/libs/pipeline"
)

// Files keeps the caches and artifacts of cache-files and store-files steps (the
// runner's talks to the log service under the job's files grant; simpleci exec and tests
// use a local store). The engine packs and unpacks the archives (libs/engine/archive);
// a Files moves their bytes.
type Files interface {
	// RestoreCache opens the newest cache entry of key in the run's scopes, else the
	// newest of the first of restoreKeys (prefixes) that matches any. ErrCacheMiss when
	// there is none.
	RestoreCache(ctx context.Context, key string, restoreKeys []string) (io.ReadCloser, CacheEntry, error)
	// Put stores r as a cache entry ("cache") in the run's own scope or as an artifact
	// of the run ("artifact"), kept for expiry. ErrCacheExists when a cache key is
	// stored already (keys are immutable).
	Put(ctx context.Context, kind, key string, expiry time.Duration, r io.Reader) error
}

// CacheEntry is what RestoreCache found.
type CacheEntry struct {
	// Key is the entry's own key; Prefix the restore key that matched ("" for the exact
	// key).
	Key, Prefix string
	// Size is the archive's size in bytes.
	Size int64
}

// Errors of a Files.
var (
	ErrCacheMiss   = errors.New("no cache entry")
	ErrCacheExists = errors.New("the cache key is stored already")
)

// Kinds of Files.Put.
const (
	KindCache    = "cache"
	KindArtifact = "artifact"
)

// pendingSave is a cache to save when the run ends successfully.
type pendingSave struct {
	step *pipeline.Step
	key  string
}

// runFilesStep runs a cache-files or store-files step. Cache misses and failed restores
// do not fail the step (the step log says what happened); a store-files step that cannot
// store fails.
func (r *jobRun) runFilesStep(ctx context.Context, index int, step *pipeline.Step, sv pipeline.Vars) StepResult {
	fail := func(format string, args ...any) StepResult {
		return StepResult{Status: StatusFailed, ExitCode: -1, Reason: fmt.Sprintf(format, args...)}
	}
	if r.job.Files == nil {
		return fail("%s steps need a store of caches and artifacts, which this runner does not have", step.Type)
	}
	key, restore, err := step.Files.Keys(step.Name, sv)
	if err != nil {
		return fail("%v", err)
	}
	if step.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, step.Timeout, errStepTimeout)
		defer cancel()
	}
	line := func(format string, args ...any) { r.em.stepLine(index, fmt.Sprintf(format, args...)) }
	switch step.Type {
	case pipeline.TypeCacheFiles:
		dest, err := r.downloadDir(step.Files.DownloadPath)
		if err != nil {
			return fail("%v", err)
		}
		start := time.Now()
		rc, entry, err := r.job.Files.RestoreCache(ctx, key, restore)
		switch {
		case errors.Is(err, ErrCacheMiss):
			line("cache miss: %s (no entry for the key%s) in %s", key, restoreList(restore), since(start))
		case err != nil:
			line("cache not restored: %s: %v", key, err)
		default:
			lim := archive.Limits{}
			lim.Chown, lim.UID, lim.GID = r.owner()
			st, err := archive.Unpack(rc, dest, lim, func(l string) { line("%s", l) })
			rc.Close()
			switch {
			case err != nil:
				line("cache not restored: %s: %v (%d files written before the error)", entry.Key, err, st.Files)
			case entry.Prefix == "":
				line("cache hit: %s (%s) in %s", entry.Key, amount(st), since(start))
			default:
				line("cache restored from prefix %q: %s (%s) in %s", entry.Prefix, entry.Key, amount(st), since(start))
			}
			if err == nil && entry.Prefix == "" {
				return StepResult{Status: StatusSucceeded} // the key is stored: nothing to save
			}
		}
		if ctx.Err() != nil {
			return r.interrupted(ctx, step)
		}
		r.saves = append(r.saves, pendingSave{step: step, key: key})
		line("the files will be saved under %s when the run succeeds", key)
		return StepResult{Status: StatusSucceeded}
	default: // store-files
		start := time.Now()
		st, err := r.put(ctx, line, KindArtifact, key, step.Files)
		switch {
		case ctx.Err() != nil:
			return r.interrupted(ctx, step)
		case err != nil:
			return fail("store artifact %s: %v", key, err)
		}
		line("stored artifact %s: %s in %s", key, amount(st), since(start))
		return StepResult{Status: StatusSucceeded}
	}
}

// saveCaches saves the caches of the run's cache-files steps whose key was not stored,
// once the run succeeded. Its lines come after the last step, as the run's own (step
// -1), each naming the cache step; a failed save never fails the run.
func (r *jobRun) saveCaches(ctx context.Context) {
	for _, s := range r.saves {
		start := time.Now()
		line := func(format string, args ...any) {
			r.em.stepLine(-1, fmt.Sprintf("step %q: ", s.step.Name)+fmt.Sprintf(format, args...))
		}
		st, err := r.put(ctx, line, KindCache, s.key, s.step.Files)
		switch {
		case errors.Is(err, ErrCacheExists):
			line("cache not saved: %s is stored already (keys are immutable: put what the files depend on into the key)", s.key)
		case err != nil:
			line("cache not saved: %s: %v", s.key, err)
		default:
			line("cache saved: %s (%s) in %s", s.key, amount(st), since(start))
		}
	}
}

// put packs the step's files and streams them to the store.
func (r *jobRun) put(ctx context.Context, line func(string, ...any), kind, key string, f *pipeline.Files) (archive.Stats, error) {
	pr, pw := io.Pipe()
	type packed struct {
		st  archive.Stats
		err error
	}
	done := make(chan packed, 1)
	go func() {
		st, err := archive.Pack(pw, r.dirReal, f.FileNames, func(l string) { line("%s", l) })
		pw.CloseWithError(err)
		done <- packed{st, err}
	}()
	err := r.job.Files.Put(ctx, kind, key, f.Expiry, pr)
	pr.CloseWithError(errors.New("the store stopped reading"))
	p := <-done
	if p.err != nil && (err == nil || errors.Is(err, io.ErrClosedPipe) || strings.Contains(err.Error(), p.err.Error())) {
		err = p.err
	}
	if err == nil && p.st.Files == 0 {
		line("warning: no files matched fileNames %s", strings.Join(f.FileNames, ", "))
	}
	return p.st, err
}

// interrupted is the result of a step stopped by a timeout or a cancel (ctx's cause).
func (r *jobRun) interrupted(ctx context.Context, step *pipeline.Step) StepResult {
	sr := StepResult{ExitCode: -1}
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errStepTimeout):
		sr.Status, sr.Reason = StatusTimedOut, fmt.Sprintf("exceeded the step's time limit of %s", step.Timeout)
	case errors.Is(cause, errJobTimeout):
		sr.Status, sr.Reason = StatusTimedOut, fmt.Sprintf("the job exceeded its time limit of %s", r.job.Timeout)
	case errors.Is(cause, errCleanupTimeout):
		sr.Status, sr.Reason = StatusTimedOut, fmt.Sprintf("exceeded the cleanup time limit of %s", r.job.CleanupTimeout)
	default:
		sr.Status, sr.Reason = StatusCancelled, "the run was cancelled"
	}
	return sr
}

// downloadDir makes the cache's download directory inside the checkout (through an
// os.Root, so a link in the checkout cannot take it elsewhere) and returns its real path.
func (r *jobRun) downloadDir(rel string) (string, error) {
	if rel == "" {
		return r.dirReal, nil
	}
	root, err := os.OpenRoot(r.dirReal)
	if err != nil {
		return "", err
	}
	defer root.Close()
	if err := root.MkdirAll(rel, 0o755); err != nil {
		return "", fmt.Errorf("downloadPath %q: %v", rel, err)
	}
	if uidSet, uid, gid := r.owner(); uidSet {
		_ = root.Lchown(rel, uid, gid)
	}
	real, err := filepath.EvalSymlinks(filepath.Join(r.dirReal, filepath.FromSlash(rel)))
	if err != nil {
		return "", fmt.Errorf("downloadPath %q: %v", rel, err)
	}
	if real != r.dirReal && !strings.HasPrefix(real, r.dirReal+string(filepath.Separator)) {
		return "", fmt.Errorf("downloadPath %q leaves the checkout (through a symbolic link)", rel)
	}
	return real, nil
}

// owner is the owner of the checkout, when the engine runs as root and the checkout is
// another user's (the sandbox's job user): restored files are given to it.
func (r *jobRun) owner() (bool, int, int) {
	if os.Geteuid() != 0 {
		return false, 0, 0
	}
	fi, err := os.Stat(r.dirReal)
	if err != nil {
		return false, 0, 0
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return false, 0, 0
	}
	return true, int(st.Uid), int(st.Gid)
}

func restoreList(restore []string) string {
	if len(restore) == 0 {
		return ""
	}
	q := make([]string, len(restore))
	for i, p := range restore {
		q[i] = fmt.Sprintf("%q", p)
	}
	return " or the restore keys " + strings.Join(q, ", ")
}

func since(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }

// amount says how many files and bytes an archive held.
func amount(st archive.Stats) string {
	s := fmt.Sprintf("%d files, %s", st.Files, FormatBytes(st.Bytes))
	if st.Refused > 0 {
		s += fmt.Sprintf(", %d refused", st.Refused)
	}
	return s
}

// FormatBytes writes n as "812 B", "3.1 kB", "42.0 MB", "1.1 GB" (powers of 1000).
func FormatBytes(n int64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	f, unit := float64(n)/1000, "kB"
	for _, u := range []string{"MB", "GB", "TB"} {
		if f < 1000 {
			break
		}
		f, unit = f/1000, u
	}
	return fmt.Sprintf("%.1f %s", f, unit)
}
