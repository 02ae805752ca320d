// Package server runs a process's gRPC and HTTP listeners with health, readiness and
// metrics endpoints, and stops them gracefully when its context ends.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/simpleci/simpleci/libs/platform/telemetry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// CheckTimeout bounds each readiness check: a dependency that does not answer within
// it counts as down.
const CheckTimeout = 2 * time.Second

// Checks is a set of named readiness checks, and whether the process is draining.
type Checks struct {
	mu       sync.Mutex
	checks   map[string]func(context.Context) error
	draining bool
}

// Add registers a readiness check; a later Add of the same name replaces it.
func (c *Checks) Add(name string, fn func(context.Context) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.checks == nil {
		c.checks = map[string]func(context.Context) error{}
	}
	c.checks[name] = fn
}

// Drain marks the process as stopping: from now on it is not ready, whatever the
// checks say, so load balancers send it nothing new.
func (c *Checks) Drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
}

// Failures runs every check at once, each with CheckTimeout, and returns the failed
// ones by name (nil when ready). A draining process fails "draining".
func (c *Checks) Failures(ctx context.Context) map[string]string {
	c.mu.Lock()
	checks := maps.Clone(c.checks)
	draining := c.draining
	c.mu.Unlock()
	failed := map[string]string{}
	if draining {
		failed["draining"] = "the process is shutting down"
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, fn := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
			defer cancel()
			err := fn(cctx)
			if err == nil && cctx.Err() != nil {
				err = cctx.Err()
			}
			if err != nil {
				mu.Lock()
				failed[name] = err.Error()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failed) == 0 {
		return nil
	}
	return failed
}

// Run runs every check and returns an error naming each failure (nil when ready).
func (c *Checks) Run(ctx context.Context) error {
	failed := c.Failures(ctx)
	if failed == nil {
		return nil
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(failed)) {
		parts = append(parts, name+": "+failed[name])
	}
	return errors.New(strings.Join(parts, "; "))
}

// Mux returns an HTTP mux serving /healthz (liveness: the process is up and serving),
// /readyz (its checks pass: 200, else 503 with {"status":"unavailable","failed":{NAME:
// REASON}}) and /metrics (Prometheus); callers add their own routes to it.
func Mux(checks *Checks) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if failed := checks.Failures(r.Context()); failed != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]any{"status": "unavailable", "failed": failed})
			return
		}
		w.Write([]byte(`{"status":"ready"}`))
	})
	mux.Handle("GET /metrics", promhttp.Handler())
	return mux
}

// NewGRPC returns a gRPC server with the standard health service (hs) and server
// reflection (v1 and v1alpha, for grpcurl and other clients that discover the API)
// registered. Its calls are counted in the process's gRPC server metrics (metrics.go),
// before opts' interceptors run, so that calls they refuse are counted too.
func NewGRPC(hs *Health, opts ...grpc.ServerOption) *grpc.Server {
	opts = append([]grpc.ServerOption{grpc.ChainUnaryInterceptor(grpcServerMetrics.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(grpcServerMetrics.StreamServerInterceptor())}, opts...)
	opts = append(opts, telemetry.GRPCServerOptions()...) // traces (none while tracing is off)
	s := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(s, hs.s)
	reflection.Register(s)
	return s
}

// Health is a process's standard gRPC health service (grpc.health.v1), which follows
// the process's life as /readyz does: NOT_SERVING while it starts, SERVING once it
// serves (Serving), NOT_SERVING for good from the moment it drains (Drain), through
// the shutdown. It answers for the whole process (service "") and for each gRPC
// service the process serves by its full name; other names are NotFound. Unlike
// /readyz it runs no checks of the process's dependencies: a peer asking it learns
// whether this process takes calls, without each check asking the next process's
// peers in turn.
type Health struct{ s *health.Server }

// NewHealth returns a health service answering NOT_SERVING.
func NewHealth() *Health {
	s := health.NewServer()
	s.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return &Health{s: s}
}

// Serving marks the process and every service gs serves SERVING (unless it drains).
func (h *Health) Serving(gs *grpc.Server) {
	for name := range gs.GetServiceInfo() {
		h.s.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	h.s.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
}

// Drain marks the process and its services NOT_SERVING and keeps them so; watchers
// are told at once.
func (h *Health) Drain() { h.s.Shutdown() }

// Listen opens a TCP listener, saying which address failed.
func Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return l, nil
}

// Deadlines of the HTTP server. A client gets ReadHeaderTimeout to send its request line
// and headers and ReadTimeout for the whole request, body included (a 25 MiB webhook needs
// under 1 MB/s), so a client that trickles bytes cannot hold a connection and its
// goroutine; an idle keep-alive connection is closed after IdleTimeout. There is no write
// deadline: a large log page to a slow reader is legitimate. A handler that streams for
// longer than ReadTimeout (the log tail) clears its read deadline with
// http.ResponseController, or the server would cancel its request when the deadline hits.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	IdleTimeout       = 2 * time.Minute
)

// HTTPServer returns the server for h with the deadlines above.
func HTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: ReadHeaderTimeout, ReadTimeout: ReadTimeout, IdleTimeout: IdleTimeout}
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
		hs = HTTPServer(h)
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
