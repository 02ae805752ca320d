package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/simpleci/simpleci/libs/engine"
	"github.com/simpleci/simpleci/libs/platform/blobstore"
)

// execFiles keeps the caches of `simpleci exec` in a Disk store of the user's cache
// directory, one per checkout, and writes artifacts there as NAME.tar.zst files, so that
// cache-files and store-files steps work locally as on the server (one scope: the
// checkout's).
type execFiles struct {
	store     blobstore.Store
	artifacts string
}

// defaultFilesDir is where exec keeps the caches and artifacts of the checkout dir:
// $XDG_CACHE_HOME/simpleci/exec/<hash of dir> (~/.cache/...).
func defaultFilesDir(dir string) string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(base, "simpleci", "exec", hex.EncodeToString(sum[:8]))
}

func newExecFiles(dir string) (*execFiles, error) {
	store, err := blobstore.NewDisk(filepath.Join(dir, "caches"), nil)
	if err != nil {
		return nil, err
	}
	art := filepath.Join(dir, "artifacts")
	if err := os.MkdirAll(art, 0o700); err != nil {
		return nil, err
	}
	return &execFiles{store: store, artifacts: art}, nil
}

const execCachePrefix = "cache/"

// RestoreCache implements engine.Files.
func (f *execFiles) RestoreCache(ctx context.Context, key string, restore []string) (io.ReadCloser, engine.CacheEntry, error) {
	info, err := f.store.Stat(ctx, execCachePrefix+blobstore.EscapeSegment(key))
	prefix := ""
	for i := 0; errors.Is(err, blobstore.ErrNotFound) && i < len(restore); i++ {
		var infos []blobstore.Info
		infos, err = f.store.List(ctx, execCachePrefix+blobstore.EscapeSegment(restore[i]))
		switch {
		case err == nil && len(infos) > 0:
			info, prefix = infos[0], restore[i]
		case err == nil:
			err = blobstore.ErrNotFound
		}
	}
	if errors.Is(err, blobstore.ErrNotFound) {
		return nil, engine.CacheEntry{}, engine.ErrCacheMiss
	}
	if err != nil {
		return nil, engine.CacheEntry{}, err
	}
	rc, info, err := f.store.Get(ctx, info.Key)
	if err != nil {
		return nil, engine.CacheEntry{}, err
	}
	name, _ := blobstore.UnescapeSegment(strings.TrimPrefix(info.Key, execCachePrefix))
	return rc, engine.CacheEntry{Key: name, Prefix: prefix, Size: info.Size}, nil
}

// Put implements engine.Files.
func (f *execFiles) Put(ctx context.Context, kind, key string, expiry time.Duration, r io.Reader) error {
	if kind == engine.KindCache {
		_, err := f.store.Put(ctx, execCachePrefix+blobstore.EscapeSegment(key), r, blobstore.PutOptions{Expires: time.Now().Add(expiry)})
		if errors.Is(err, blobstore.ErrExists) {
			return engine.ErrCacheExists
		}
		return err
	}
	tmp, err := os.CreateTemp(f.artifacts, ".artifact-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	path := filepath.Join(f.artifacts, blobstore.EscapeSegment(key)+".tar.zst")
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("artifact %s: %w", key, err)
	}
	return nil
}
