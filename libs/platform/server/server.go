// Package server runs a process's gRPC and HTTP listeners with health, readiness and
// metrics endpoints, and stops them gracefully when its context ends.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Checks is a set of named readiness checks.
type Checks struct {
	mu     sync.Mutex
	checks map[string]func(context.Context) error
}

// Add registers a readiness check.
func (c *Checks) Add(name string, fn func(context.Context) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.checks == nil {
		c.checks = map[string]func(context.Context) error{}
	}
	c.checks[name] = fn
}

// Run runs every check and returns the first failure.
func (c *Checks) Run(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, fn := range c.checks {
		if err := fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// Mux returns an HTTP mux serving /healthz (the process is up), /readyz (its checks pass)
// and /metrics (Prometheus); callers add their own routes to it.
func Mux(checks *Checks) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		if err := checks.Run(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"status":"unavailable","reason":%q}`, err.Error())
			return
		}
		w.Write([]byte(`{"status":"ready"}`))
	})
	mux.Handle("GET /metrics", promhttp.Handler())
	return mux
}

// NewGRPC returns a gRPC server with the standard health service registered.
func NewGRPC(opts ...grpc.ServerOption) *grpc.Server {
	s := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(s, health.NewServer())
	return s
}

// Listen opens a TCP listener, saying which address failed.
func Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return l, nil
}

// Serve runs the gRPC server on gl and the HTTP handler on hl (either may be nil) until
// ctx ends, then stops both, giving in-flight calls up to 5 seconds.
func Serve(ctx context.Context, log *slog.Logger, gs *grpc.Server, gl net.Listener, h http.Handler, hl net.Listener) error {
	errc := make(chan error, 2)
	var hs *http.Server
	if gs != nil && gl != nil {
		go func() { errc <- gs.Serve(gl) }()
		log.Info("grpc listening", "addr", gl.Addr().String())
	}
	if h != nil && hl != nil {
		hs = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := hs.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
				return
			}
			errc <- nil
		}()
		log.Info("http listening", "addr", hl.Addr().String())
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if hs != nil {
		hs.Shutdown(sctx)
	}
	if gs != nil {
		done := make(chan struct{})
		go func() { gs.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-sctx.Done():
			gs.Stop()
		}
	}
	return err
}
