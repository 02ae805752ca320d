module github.com/simpleci/simpleci/services/log

go 1.26
