#pragma once
// Prometheus metrics of the HTTP layer, plus collectors the daemon adds for its own state.
// Thread-safe: observe() is called from I/O threads, render() from a request handler.

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace snapvirt::api {

// A fixed-bucket histogram in seconds (or any unit), Prometheus style.
class Histogram {
public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double value);
    // Appends `name_bucket{labels,le=..}`, `name_sum{labels}` and `name_count{labels}` lines.
    void render(std::string& out, const std::string& name, const std::string& labels) const;

private:
    std::vector<double> bounds_;
    std::vector<std::uint64_t> counts_;  // one more than bounds_: +Inf
    double sum_ = 0;
    std::uint64_t count_ = 0;
    mutable std::mutex mu_;
};

class Metrics {
public:
    void observe_request(const std::string& method, const std::string& route, int status, double seconds);
    void connection_opened() { ++open_connections_; ++connections_total_; }
    void connection_closed() { --open_connections_; }
    void connection_refused() { ++connections_refused_; }

    // `collect` appends complete metric families (with # HELP and # TYPE) to `out`.
    void add_collector(std::function<void(std::string& out)> collect);
    std::string render() const;

private:
    struct RouteStats {
        std::map<int, std::uint64_t> by_status;
        std::unique_ptr<Histogram> latency;
    };
    mutable std::mutex mu_;
    std::map<std::pair<std::string, std::string>, RouteStats> routes_;  // (method, route)
    std::atomic<std::int64_t> open_connections_{0};
    std::atomic<std::uint64_t> connections_total_{0};
    std::atomic<std::uint64_t> connections_refused_{0};
    std::vector<std::function<void(std::string&)>> collectors_;
};

// Escapes a label value for the Prometheus text format.
std::string prom_escape(const std::string& value);
// Formats a number the way Prometheus expects (no exponent noise for integers).
std::string prom_number(double value);

}  // namespace snapvirt::api
