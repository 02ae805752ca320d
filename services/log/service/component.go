package service

import (
	"context"

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
	return append(cfg.RequireDatabase("log"), cfg.RequirePeers("log", "auth")...)
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
	return nil
}
