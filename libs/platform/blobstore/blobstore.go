// Package blobstore keeps the caches and artifacts of runs (issue 15) behind one
// interface: [Disk], the local directory of the embedded default (simpleci dev), and any
// S3-compatible object store for the split deployment. Objects are streamed in and out
// (io.Reader, never a whole archive in memory), sized and checksummed (SHA-256) while they
// are written; a reader returned by Get verifies the checksum at the end of the stream
// and fails instead of returning io.EOF when the bytes differ. Every object has an
// expiry, and keys are immutable: Put refuses a key that exists.
//
// Keys are paths of segments separated by "/", chosen by the caller
// ("cache/<project>/<scope>/<key>", "artifacts/<project>/<run>/<name>"); a segment may
// hold any printable character but "/" (callers escape user-chosen names with
// EscapeSegment).
package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"strings"
	"time"
)

// Errors a Store returns (wrapped).
var (
	// ErrNotFound: no object has the key (or it expired).
	ErrNotFound = errors.New("not found")
	// ErrExists: Put of a key that is stored already (keys are immutable).
	ErrExists = errors.New("already stored")
	// ErrTooLarge: the stream passed the limit given to Put; nothing was stored.
	ErrTooLarge = errors.New("too large")
	// ErrChecksum: the bytes read back are not those stored.
	ErrChecksum = errors.New("checksum mismatch")
)

// Info describes a stored object.
type Info struct {
	Key     string
	Size    int64
	SHA256  string // hex
	Created time.Time
	Expires time.Time
}

// PutOptions say how to store an object.
type PutOptions struct {
	// Expires is when the object may be deleted by a sweep. Required.
	Expires time.Time
	// MaxBytes bounds the object's size; a longer stream fails with ErrTooLarge and
	// stores nothing. Zero means no limit.
	MaxBytes int64
}

// Store is where caches and artifacts are kept. Implementations are safe for concurrent
// use. Get, List and Stat do not return expired objects; Sweep deletes them.
type Store interface {
	// Put streams r into a new object under key. It fails with ErrExists when key is
	// stored (concurrent Puts of one key: one wins, the others get ErrExists), with
	// ErrTooLarge past opts.MaxBytes; on any error nothing is stored.
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (Info, error)
	// Get opens an object for reading; the reader fails with ErrChecksum at its end
	// when the bytes differ from those stored.
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)
	// Stat describes an object.
	Stat(ctx context.Context, key string) (Info, error)
	// List describes the objects whose keys start with prefix, newest first.
	List(ctx context.Context, prefix string) ([]Info, error)
	// Delete removes an object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Sweep deletes the objects expired at now and returns how many.
	Sweep(ctx context.Context, now time.Time) (int, error)
}

// EscapeSegment makes a user-chosen name (a cache key, an artifact name) one segment of
// a key: "/" and "%" are escaped, so that no name can reach another's place, and the
// result starts with a prefix of the name (List by prefix works on escaped prefixes).
func EscapeSegment(s string) string {
	return strings.ReplaceAll(url.PathEscape(s), ".", "%2E")
}

// UnescapeSegment is the reverse of EscapeSegment.
func UnescapeSegment(s string) (string, error) { return url.PathUnescape(s) }

// checkKey refuses keys that are not paths of non-empty segments.
func checkKey(key string) error {
	if key == "" || len(key) > 1024 || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("blobstore: invalid key %q", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "\x00\n\r") {
			return fmt.Errorf("blobstore: invalid key %q", key)
		}
	}
	return nil
}

// limitedHash counts and hashes what passes through it and fails past max bytes.
type limitedHash struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	max int64
}

func newLimitedHash(r io.Reader, max int64) *limitedHash {
	return &limitedHash{r: r, h: sha256.New(), max: max}
}

func (l *limitedHash) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.h.Write(p[:n])
	l.n += int64(n)
	if l.max > 0 && l.n > l.max {
		return n, fmt.Errorf("blobstore: more than %d bytes: %w", l.max, ErrTooLarge)
	}
	return n, err
}

func (l *limitedHash) sum() string { return hex.EncodeToString(l.h.Sum(nil)) }

// verifyingReader hashes what is read and checks the sum at EOF.
type verifyingReader struct {
	rc   io.ReadCloser
	h    hash.Hash
	n    int64
	want Info
}

// NewVerifyingReader returns rc reading the object described by want, failing with
// ErrChecksum at the end when the size or the SHA-256 differ.
func NewVerifyingReader(rc io.ReadCloser, want Info) io.ReadCloser {
	return &verifyingReader{rc: rc, h: sha256.New(), want: want}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if errors.Is(err, io.EOF) {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want.SHA256 || v.n != v.want.Size {
			return n, fmt.Errorf("blobstore: %s: read %d bytes with sha256 %s, stored %d bytes with sha256 %s: %w",
				v.want.Key, v.n, got, v.want.Size, v.want.SHA256, ErrChecksum)
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.rc.Close() }

// Evict deletes the oldest objects under prefix until the others hold at most max
// bytes, and returns those it deleted. keep, when not empty, is never deleted (the
// object just stored).
func Evict(ctx context.Context, s Store, prefix string, max int64, keep string) ([]Info, error) {
	infos, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, in := range infos {
		total += in.Size
	}
	var gone []Info
	for i := len(infos) - 1; i >= 0 && total > max; i-- { // oldest last
		if infos[i].Key == keep {
			continue
		}
		if err := s.Delete(ctx, infos[i].Key); err != nil {
			return gone, err
		}
		total -= infos[i].Size
		gone = append(gone, infos[i])
	}
	return gone, nil
}

// live is Stat's answer for an object whose Info was read as info, err: the object of
// key, unless it is another key's or expired at now.
func live(key string, info Info, err error, now time.Time) (Info, error) {
	switch {
	case err != nil:
		return Info{}, err
	case info.Key != key:
		return Info{}, fmt.Errorf("blobstore: %s: stored under another key", key)
	case !now.Before(info.Expires):
		return Info{}, fmt.Errorf("blobstore: %s (expired): %w", key, ErrNotFound)
	}
	return info, nil
}

// unexpired keeps the objects of all under prefix that have not expired at now, newest
// first.
func unexpired(all []Info, prefix string, now time.Time) []Info {
	out := all[:0]
	for _, info := range all {
		if strings.HasPrefix(info.Key, prefix) && now.Before(info.Expires) {
			out = append(out, info)
		}
	}
	SortNewestFirst(out)
	return out
}

// sweep deletes the objects of all expired at now from s.
func sweep(ctx context.Context, s Store, all []Info, now time.Time) (int, error) {
	n := 0
	for _, info := range all {
		if now.Before(info.Expires) {
			continue
		}
		if err := s.Delete(ctx, info.Key); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
