#!/usr/bin/env bash
# The tests need the machine's RabbitMQ and PostgreSQL. Start them if they are installed but
# stopped; say what to do if they are missing.
set -u

rabbit_up() { rabbitmqctl -q await_startup >/dev/null 2>&1 || rabbitmq-diagnostics -q check_running >/dev/null 2>&1; }
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  if command -v rabbitmq-server >/dev/null; then
    echo "RabbitMQ is not running; starting it (rabbitmq-server -detached)"
    rabbitmq-server -detached
    for _ in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 1; done
    rabbit_up || true
  else
    echo "RabbitMQ is needed on 127.0.0.1:5672 and is not installed (apt-get install rabbitmq-server)" >&2
    exit 1
  fi
fi

# The dashboard's queues page reads RabbitMQ's management API (depth, rates, consumers).
if command -v rabbitmq-plugins >/dev/null && ! (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null; then
  echo "enabling RabbitMQ's management API (rabbitmq-plugins enable rabbitmq_management)"
  rabbitmq-plugins enable rabbitmq_management >/dev/null || echo "could not enable it: the dashboard's queues page will say so" >&2
fi

if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null; then
    echo "PostgreSQL is not running; starting it"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && break; sleep 1; done
  else
    echo "PostgreSQL is needed on 127.0.0.1:5432 and is not installed" >&2
    exit 1
  fi
fi
exit 0
