package service

import (
	"context"
	"flag"
	"path/filepath"
	"slices"
	"time"

	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/libs/platform/node/nodeforge"
	"github.com/simpleci/simpleci/libs/platform/node/nodesql"
	"github.com/simpleci/simpleci/libs/platform/seal"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
)

// Component runs the project service in a node process.
type Component struct {
	// SecretsKeyring is the file of the keys that seal project secrets (default
	// DATA/secrets.keyring; no file and no data directory disable secrets).
	SecretsKeyring string
	// PublicURL is where forges deliver webhooks (--public-url): a github project
	// gets its repository webhook registered for it (hooks.go).
	PublicURL string
	// Service is the running service (set by Init).
	Service *Service
}

// Name implements node.Component.
func (c *Component) Name() string { return "project" }

// Flags implements node.Flagger.
func (c *Component) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.SecretsKeyring, "secrets-keyring", node.Getenv("SIMPLECI_SECRETS_KEYRING", ""), "project: file of the keys that seal project secrets (ID:BASE64 per line; created if missing)")
	node.SharedString(fs, &c.PublicURL, "public-url", node.Getenv("SIMPLECI_PUBLIC_URL", ""), "URL users and forges reach this deployment at (https://ci.example.com/); github projects get their webhook registered for it")
}

// Validate implements node.Validator.
func (c *Component) Validate(cfg *node.Config) []string {
	return append(cfg.RequireDatabase("project"), cfg.RequirePeers("project", "auth", "scheduler")...)
}

// Init implements node.Component.
func (c *Component) Init(ctx context.Context, env *node.Env) error {
	db, err := nodesql.Open(ctx, env, "project")
	if err != nil {
		return err
	}
	forges, err := nodeforge.Open(env)
	if err != nil {
		return err
	}
	if c.Service, err = New(ctx, db, forges.Names()); err != nil {
		return err
	}
	c.Service.WithForges(forges)
	c.Service.WithPublicURL(c.PublicURL)
	if c.PublicURL == "" && slices.Contains(forges.Names(), "github") {
		env.Log.Warn("github projects get no webhook registered: give --public-url, the base URL GitHub delivers to")
	}
	keyring := c.SecretsKeyring
	if keyring == "" && env.Config.DataDir != "" {
		keyring = filepath.Join(env.Config.DataDir, "secrets.keyring")
	}
	if keyring == "" {
		env.Log.Warn("project secrets disabled: give --secrets-keyring (or --data)")
	} else {
		keys, err := seal.LoadOrCreate(keyring)
		if err != nil {
			return err
		}
		if err := c.Service.WithKeys(ctx, keys); err != nil {
			return err
		}
	}
	sc, err := env.Dial("scheduler")
	if err != nil {
		return err
	}
	c.Service.WithTiers(SchedulerTiers(apiv1.NewRunServiceClient(sc), 10*time.Second))
	c.Service.Register(env.GRPC)
	return nil
}
