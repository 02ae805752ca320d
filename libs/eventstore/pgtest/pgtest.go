// Package pgtest gives tests a fresh PostgreSQL database of their own on the
// server named by SIMPLECI_TEST_POSTGRES_URL, and drops it when the test ends.
//
// When the variable is unset the test is skipped (a plain `go test ./...`
// needs no servers); `make test` always sets it. When it is set, any failure
// to reach the server fails the test: it is never silently skipped.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvURL is the environment variable naming the test server: a PostgreSQL
// URL (postgres://user@host:port/db?sslmode=disable) of a role that may
// CREATE DATABASE.
const EnvURL = "SIMPLECI_TEST_POSTGRES_URL"

// SkipMessage is the reason tests are skipped when EnvURL is unset.
const SkipMessage = EnvURL + " not set: run via make test, or start deploy/local/postgres.sh"

// AdminURL returns the value of EnvURL, skipping the test when it is unset.
func AdminURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		t.Skip(SkipMessage)
	}
	return u
}

// NewDatabase creates an empty database with a random name on the server
// named by EnvURL, registers its removal with t.Cleanup, and returns a URL
// for it. It skips the test when EnvURL is unset.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminURL(t)

	name := databaseName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", EnvURL, err)
	}
	defer conn.Close(context.Background())
	// template0: CREATE DATABASE from template1 fails while anyone is
	// connected to template1.
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		// FORCE ends sessions a test forgot to close.
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})

	dbURL, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvURL, err)
	}
	return dbURL
}

// NewPool is NewDatabase plus a pgxpool connected to it, closed when the test
// ends (before the database is dropped).
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	dbURL := NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatalf("pgtest: connect to test database: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("pgtest: ping test database: %v", err)
	}
	return pool
}

// databaseName is "t_<test name, sanitised>_<random>", within PostgreSQL's
// 63-byte identifier limit, so a leftover database says which test made it.
func databaseName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	var random [8]byte
	_, _ = rand.Read(random[:])
	return "t_" + b.String() + "_" + hex.EncodeToString(random[:])
}

// withDatabase returns connection string s pointing at database name. It
// accepts URLs and keyword/value strings ("host=... user=...").
func withDatabase(s, name string) (string, error) {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("parse URL: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In keyword/value form a later keyword wins.
	return s + " dbname=" + name, nil
}
