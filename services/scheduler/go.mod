module github.com/simpleci/simpleci/services/scheduler

go 1.26

require (
	github.com/simpleci/simpleci/libs/bus v0.0.0
	github.com/simpleci/simpleci/libs/eventstore v0.0.0
	github.com/simpleci/simpleci/libs/forge v0.0.0
	github.com/simpleci/simpleci/libs/pipeline v0.0.0
	github.com/simpleci/simpleci/libs/platform v0.0.0
	github.com/simpleci/simpleci/proto v0.0.0
)

replace (
	github.com/simpleci/simpleci/libs/bus => ../../libs/bus
	github.com/simpleci/simpleci/libs/eventstore => ../../libs/eventstore
	github.com/simpleci/simpleci/libs/forge => ../../libs/forge
	github.com/simpleci/simpleci/libs/pipeline => ../../libs/pipeline
	github.com/simpleci/simpleci/libs/platform => ../../libs/platform
	github.com/simpleci/simpleci/proto => ../../proto
)
