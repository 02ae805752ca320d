package server

import (
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// Namespace prefixes every metric of SimpleCI (docs/operations.md, "Metrics").
const Namespace = "simpleci"

// The gRPC metrics of the process, from the ecosystem's interceptors
// (go-grpc-middleware/providers/prometheus): simpleci_grpc_server_handled_total,
// simpleci_grpc_server_handling_seconds and the rest, and their client twins. Labels are
// the service, method, call type and status code: bounded by the API. They are
// registered once in the default registry: every server and connection of the process
// (all services of `simpleci dev`) counts into them.
var (
	grpcServerMetrics = grpcprom.NewServerMetrics(
		grpcprom.WithServerCounterOptions(grpcprom.WithNamespace(Namespace)),
		grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramNamespace(Namespace)))
	grpcClientMetrics = grpcprom.NewClientMetrics(
		grpcprom.WithClientCounterOptions(grpcprom.WithNamespace(Namespace)),
		grpcprom.WithClientHandlingTimeHistogram(grpcprom.WithHistogramNamespace(Namespace)))
)

func init() {
	prometheus.MustRegister(grpcServerMetrics, grpcClientMetrics)
}

// InitGRPCMetrics gives every method s serves its series at zero, so that a rate over
// a method that was never called reads 0, not nothing. Call it once every service is
// registered on s.
func InitGRPCMetrics(s *grpc.Server) { grpcServerMetrics.InitializeMetrics(s) }

// GRPCClientMetrics are the dial options that count a connection's calls in the
// process's client metrics.
func GRPCClientMetrics() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(grpcClientMetrics.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(grpcClientMetrics.StreamClientInterceptor()),
	}
}
