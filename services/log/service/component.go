package service

import (
	"context"
	"path/filepath"

	"github.com/simpleci/simpleci/libs/platform/blobstore"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"

	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/libs/platform/node/nodebus"
	"github.com/simpleci/simpleci/libs/platform/node/nodesql"
)

// Component runs the log service in a node process.
type Component struct{}

// Name implements node.Component.
func (Component) Name() string { return "log" }

// Validate implements node.Validator.
func (Component) Validate(cfg *node.Config) []string {
	return append(cfg.RequireDatabase("log"), cfg.RequirePeers("log", "auth", "project")...)
}

// Init implements node.Component.
func (Component) Init(ctx context.Context, env *node.Env) error {
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
	return initFiles(env)
}

// initFiles serves the runs' caches and artifacts from the data directory (the embedded
// default). Without one (a split deployment on PostgreSQL), runners' cache-files and
// store-files steps get Unavailable until an object store is configured.
func initFiles(env *node.Env) error {
	if env.Config.DataDir == "" {
		env.Log.Warn("log: no data directory: caches and artifacts are not kept (cache-files and store-files steps fail)")
		return nil
	}
	store, err := blobstore.NewDisk(filepath.Join(env.Config.DataDir, "files"), nil)
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
