module github.com/simpleci/simpleci/services/gateway

go 1.26
