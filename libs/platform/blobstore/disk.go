package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Disk is a Store in a local directory: each object is a data file named after the
// SHA-256 of its key, beside a JSON file of its Info; both are written to temporary
// names, synced and renamed, the Info last, so a crash leaves no half object visible.
type Disk struct {
	dir string
	now func() time.Time
	mu  sync.Mutex // serialises the commit of a Put against another of the same key
}

// NewDisk opens (and creates, mode 0700) a Disk store in dir. now is the clock (nil:
// time.Now).
func NewDisk(dir string, now func() time.Time) (*Disk, error) {
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(filepath.Join(dir, "objects"), 0o700); err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	// Temporary files of a crashed Put.
	tmp, _ := filepath.Glob(filepath.Join(dir, "objects", "*.tmp*"))
	for _, f := range tmp {
		os.Remove(f)
	}
	return &Disk{dir: dir, now: now}, nil
}

func (d *Disk) paths(key string) (data, meta string) {
	sum := sha256.Sum256([]byte(key))
	base := filepath.Join(d.dir, "objects", hex.EncodeToString(sum[:]))
	return base + ".data", base + ".json"
}

// Put implements Store.
func (d *Disk) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, err
	}
	if opts.Expires.IsZero() {
		return Info{}, errors.New("blobstore: an expiry is required")
	}
	dataPath, metaPath := d.paths(key)
	if _, err := d.Stat(ctx, key); err == nil {
		return Info{}, fmt.Errorf("blobstore: %s: %w", key, ErrExists)
	}
	f, err := os.CreateTemp(filepath.Dir(dataPath), filepath.Base(dataPath)+".tmp*")
	if err != nil {
		return Info{}, fmt.Errorf("blobstore: %w", err)
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	lh := newLimitedHash(r, opts.MaxBytes)
	_, err = io.Copy(f, &ctxReader{ctx: ctx, r: lh})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Info{}, fmt.Errorf("blobstore: put %s: %w", key, err)
	}
	info := Info{Key: key, Size: lh.n, SHA256: lh.sum(), Created: d.now().UTC(), Expires: opts.Expires.UTC()}
	meta, _ := json.Marshal(info)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.Stat(ctx, key); err == nil {
		return Info{}, fmt.Errorf("blobstore: %s: %w", key, ErrExists)
	}
	if err := os.Rename(f.Name(), dataPath); err != nil {
		return Info{}, fmt.Errorf("blobstore: %w", err)
	}
	if err := writeFileAtomic(metaPath, meta); err != nil {
		os.Remove(dataPath)
		return Info{}, fmt.Errorf("blobstore: %w", err)
	}
	return info, nil
}

func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (d *Disk) readInfo(metaPath string) (Info, error) {
	b, err := os.ReadFile(metaPath)
	if err != nil {
		return Info{}, err
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return Info{}, fmt.Errorf("blobstore: %s: %w", metaPath, err)
	}
	return info, nil
}

// Stat implements Store.
func (d *Disk) Stat(_ context.Context, key string) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, err
	}
	_, metaPath := d.paths(key)
	info, err := d.readInfo(metaPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("blobstore: %s: %w", key, ErrNotFound)
	}
	return live(key, info, err, d.now())
}

// Get implements Store.
func (d *Disk) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	info, err := d.Stat(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	dataPath, _ := d.paths(key)
	f, err := os.Open(dataPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) { // deleted meanwhile
			return nil, Info{}, fmt.Errorf("blobstore: %s: %w", key, ErrNotFound)
		}
		return nil, Info{}, err
	}
	return NewVerifyingReader(f, info), info, nil
}

// all reads every object's Info, expired ones included.
func (d *Disk) all() ([]Info, error) {
	metas, err := filepath.Glob(filepath.Join(d.dir, "objects", "*.json"))
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(metas))
	for _, m := range metas {
		info, err := d.readInfo(m)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// List implements Store.
func (d *Disk) List(_ context.Context, prefix string) ([]Info, error) {
	all, err := d.all()
	if err != nil {
		return nil, err
	}
	return unexpired(all, prefix, d.now()), nil
}

// SortNewestFirst orders infos by creation, newest first (then by key).
func SortNewestFirst(infos []Info) {
	sort.Slice(infos, func(i, j int) bool {
		if !infos[i].Created.Equal(infos[j].Created) {
			return infos[i].Created.After(infos[j].Created)
		}
		return infos[i].Key < infos[j].Key
	})
}

// Delete implements Store.
func (d *Disk) Delete(_ context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	dataPath, metaPath := d.paths(key)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.Remove(metaPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Remove(dataPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Sweep implements Store.
func (d *Disk) Sweep(ctx context.Context, now time.Time) (int, error) {
	all, err := d.all()
	if err != nil {
		return 0, err
	}
	return sweep(ctx, d, all, now)
}
