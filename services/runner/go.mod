module github.com/simpleci/simpleci/services/runner

go 1.26
