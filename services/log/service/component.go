package service

import (
	"context"
	"flag"
	"path/filepath"
	"time"

	"github.com/simpleci/simpleci/libs/platform/blobstore"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"

	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/libs/platform/node/nodebus"
	"github.com/simpleci/simpleci/libs/platform/node/nodesql"
)

// Component runs the log service in a node process.
type Component struct {
	// FilesStore is where caches and artifacts are kept: an S3 URL, or "" for the data
	// directory.
	FilesStore string
}

// Name implements node.Component.
func (*Component) Name() string { return "log" }

// Flags implements node.Flagger.
func (c *Component) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.FilesStore, "files-store", node.Getenv("SIMPLECI_FILES_STORE", ""),
		"log: where runs' caches and artifacts are kept: an S3-compatible bucket, http(s)://ACCESS:SECRET@HOST/BUCKET (give it in SIMPLECI_FILES_STORE, not on the command line); empty: DATA/files")
}

// Validate implements node.Validator.
func (*Component) Validate(cfg *node.Config) []string {
	return append(cfg.RequireDatabase("log"), cfg.RequirePeers("log", "auth", "project")...)
}

// Init implements node.Component.
func (c *Component) Init(ctx context.Context, env *node.Env) error {
	db, err := nodesql.Open(ctx, env, "log")
	if err != nil {
		return err
	}
	b, err := nodebus.Open(ctx, env)
	if err != nil {
		return err
	}
	s, err := New(ctx, db, b, env.Config.InternalToken, env.Log)
	if err != nil {
		return err
	}
	s.Register(env.GRPC)
	env.OnStart(s.Start)
	return c.initFiles(env)
}

// initFiles serves the runs' caches and artifacts from the S3 bucket of --files-store, or
// else from the data directory (the embedded default). Without either, runners'
// cache-files and store-files steps fail saying so.
func (c *Component) initFiles(env *node.Env) error {
	var store blobstore.Store
	var err error
	switch {
	case c.FilesStore != "":
		var s3 *blobstore.S3
		if s3, err = blobstore.NewS3FromURL(c.FilesStore, nil); err == nil {
			bctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err = s3.EnsureBucket(bctx)
			cancel()
		}
		store = s3
	case env.Config.DataDir != "":
		store, err = blobstore.NewDisk(filepath.Join(env.Config.DataDir, "files"), nil)
	default:
		env.Log.Warn("log: no --files-store and no data directory: caches and artifacts are not kept (cache-files and store-files steps fail)")
		return nil
	}
	if err != nil {
		return err
	}
	pc, err := env.DialForwarding("project")
	if err != nil {
		return err
	}
	f, err := NewFiles(FilesConfig{Store: store, Projects: apiv1.NewProjectServiceClient(pc)}, env.Config.InternalToken, env.Log)
	if err != nil {
		return err
	}
	f.Register(env.GRPC)
	env.Worker(func(ctx, _ context.Context) { f.Sweep(ctx, DefaultSweepInterval) })
	return nil
}
