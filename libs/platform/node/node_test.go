package node

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// component is a Component with a name and an Init.
type component struct {
	name string
	init func(ctx context.Context, env *Env) error
}

func (c component) Name() string { return c.name }
func (c component) Init(ctx context.Context, env *Env) error {
	if c.init == nil {
		return nil
	}
	return c.init(ctx, env)
}

// TestUnlistedMethodRefusesStart: a process that would serve a method the ACL does not
// list does not start (the method would be refused to everyone), naming the method.
func TestUnlistedMethodRefusesStart(t *testing.T) {
	desc := &grpc.ServiceDesc{ServiceName: "simpleci.test.v1.Unlisted", HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Call", Handler: func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
			return nil, nil
		}}}}
	comp := component{name: "log", init: func(_ context.Context, env *Env) error {
		env.GRPC.RegisterService(desc, struct{}{})
		return nil
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Run(ctx, Config{GRPCAddr: "127.0.0.1:0", DataDir: t.TempDir()}, comp)
	if err == nil || !strings.Contains(err.Error(), "/simpleci.test.v1.Unlisted/Call") || !strings.Contains(err.Error(), "ACL") {
		t.Fatalf("Run: %v, want a refusal naming the unlisted method", err)
	}
}

// TestDialPresentsTheComponentsIdentity: Dial works for a service during its Init and
// not for the runner (it has its own token) nor outside an Init.
func TestDialPresentsTheComponentsIdentity(t *testing.T) {
	var envSeen *Env
	var dialErrs = map[string]error{}
	mk := func(name string) component {
		return component{name: name, init: func(_ context.Context, env *Env) error {
			envSeen = env
			_, dialErrs[name] = env.Dial("log")
			return nil
		}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg := Config{GRPCAddr: "127.0.0.1:0", DataDir: t.TempDir(), Ready: func(Info) { cancel() }}
	if err := Run(ctx, cfg, mk("log"), mk("gateway"), mk("runner")); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if dialErrs["log"] != nil || dialErrs["gateway"] != nil {
		t.Fatalf("services' Dial: %v", dialErrs)
	}
	if err := dialErrs["runner"]; err == nil || !strings.Contains(err.Error(), "DialToken") {
		t.Fatalf("the runner's Dial: %v, want a refusal pointing to DialToken", err)
	}
	if _, err := envSeen.Dial("log"); err == nil {
		t.Fatal("Dial outside an Init presented no identity and was not refused")
	}
}

func TestValidateRunnerCredentials(t *testing.T) {
	runner := component{name: "runner"}
	for _, tt := range []struct {
		name  string
		cfg   Config
		comps []Component
		want  string
	}{
		{"a runner process with the internal token", Config{InternalToken: "s"}, []Component{runner}, "a runner process must not hold the deployment's internal token"},
		{"a runner process without it", Config{Peers: map[string]string{"scheduler": "x:1"}}, []Component{runner}, ""},
		{"the runner beside a service may hold it", Config{InternalToken: "s"}, []Component{runner, component{name: "scheduler"}}, ""},
		{"a runner process with Kafka brokers", Config{KafkaBrokers: []string{"kafka:9092"}}, []Component{runner}, "a runner process needs no Kafka brokers"},
		{"the runner beside a service uses the process's bus", Config{InternalToken: "s", KafkaBrokers: []string{"kafka:9092"}}, []Component{runner, component{name: "scheduler"}}, ""},
		{"a service apart without it", Config{Peers: map[string]string{"auth": "x:1"}}, []Component{component{name: "log"}}, "need a shared --internal-token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(&tt.cfg, tt.comps...)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate: %v, want %q", err, tt.want)
			}
		})
	}
}

// TestGRPCHealthFollowsTheLifecycle: the standard gRPC health service answers
// NOT_SERVING while the process starts, SERVING (for the process and each service it
// serves) once it serves, and NOT_SERVING from the first signal while its work in
// progress finishes, as /readyz does; an unknown service is NotFound.
func TestGRPCHealthFollowsTheLifecycle(t *testing.T) {
	const secret = "int-health-test"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	check := func(service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
		token, err := auth.IdentityToken(secret, "gateway")
		if err != nil {
			t.Fatal(err)
		}
		c, err := auth.Dial(addr, token)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := healthpb.NewHealthClient(c).Check(cctx, &healthpb.HealthCheckRequest{Service: service})
		return resp.GetStatus(), err
	}

	ctx, signal := context.WithCancel(context.Background())
	defer signal()
	workerStopping, release := make(chan struct{}), make(chan struct{})
	comp := component{name: "log", init: func(_ context.Context, env *Env) error {
		env.Worker(func(ctx, _ context.Context) {
			<-ctx.Done()
			close(workerStopping)
			<-release // the work in progress, finishing while the process drains
		})
		return nil
	}}
	var duringStart healthpb.HealthCheckResponse_ServingStatus
	var duringStartErr error
	started := make(chan struct{})
	cfg := Config{GRPCAddr: addr, DataDir: t.TempDir(), InternalToken: secret,
		// OnStart runs while the gRPC server already serves, before the process counts as started.
		OnStart: func(context.Context) error { duringStart, duringStartErr = check(""); return nil },
		Ready:   func(Info) { close(started) }}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, comp) }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	if duringStartErr != nil || duringStart != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health while starting: %v %v, want NOT_SERVING", duringStart, duringStartErr)
	}
	for _, svc := range []string{"", "grpc.health.v1.Health"} {
		if st, err := check(svc); err != nil || st != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health of %q once started: %v %v, want SERVING", svc, st, err)
		}
	}
	if _, err := check("simpleci.nothing.v1.Nothing"); status.Code(err) != codes.NotFound {
		t.Fatalf("health of an unknown service: %v, want NotFound", err)
	}

	signal()
	<-workerStopping
	for _, svc := range []string{"", "grpc.health.v1.Health"} {
		if st, err := check(svc); err != nil || st != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("health of %q while draining: %v %v, want NOT_SERVING", svc, st, err)
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
