package service

import (
	"context"
	"errors"
	"flag"
	"path/filepath"

	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/libs/platform/node/nodesql"
)

// Component runs the auth service in a node process; the process then verifies user
// tokens with it directly.
type Component struct {
	// AdminTokenFile holds the bootstrap admin token (default DATA/admin-token).
	AdminTokenFile string
	// Service is the running service (set by Init).
	Service *Service
	// NewAdminToken is the admin token when this start created it (set by Init).
	NewAdminToken string
}

// Name implements node.Component.
func (c *Component) Name() string { return "auth" }

// Flags implements node.Flagger.
func (c *Component) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", node.Getenv("SIMPLECI_ADMIN_TOKEN_FILE", ""), "auth: file with the bootstrap admin token (created if missing)")
}

// Validate implements node.Validator.
func (c *Component) Validate(cfg *node.Config) []string {
	problems := cfg.RequireDatabase("auth")
	if c.AdminTokenFile == "" && cfg.DataDir == "" {
		problems = append(problems, "the auth service needs --admin-token-file or --data")
	}
	return problems
}

// Init implements node.Component.
func (c *Component) Init(ctx context.Context, env *node.Env) error {
	db, err := nodesql.Open(ctx, env, "auth")
	if err != nil {
		return err
	}
	if c.Service, err = New(ctx, db); err != nil {
		return err
	}
	tokenFile := c.AdminTokenFile
	if tokenFile == "" {
		if env.Config.DataDir == "" {
			return errors.New("no admin token file (--admin-token-file or --data)")
		}
		tokenFile = filepath.Join(env.Config.DataDir, "admin-token")
	}
	tok, created, err := c.Service.Bootstrap(ctx, tokenFile)
	if err != nil {
		return err
	}
	if created {
		c.NewAdminToken = tok
	}
	// A token revoked here stops working in this process at once; other processes
	// verify again within auth.CacheTTL.
	c.Service.OnRevoke = env.ForgetToken
	env.Authenticate(Local{S: c.Service})
	c.Service.Register(env.GRPC)
	return nil
}
