package service

import (
	"embed"

	"github.com/simpleci/simpleci/libs/platform/sqldb"
)

//go:embed migrations
var migrations embed.FS

// Schema is the project service's tables as versioned migrations (migrations/postgres, migrations/sqlite),
// applied by New; its versions are kept in project_schema_migrations.
var Schema = sqldb.Schema{Name: "project", Migrations: migrations, Dir: "migrations"}
