// Threads that help a collection: the caller is worker 0, the pool's
// threads are 1..n-1. They sleep between collections.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cb {

struct Header;

// What a worker keeps from one collection to the next, so that the memory
// of its buffers (and, in a virtual machine, their costly first-touch page
// faults) is paid once. Aligned to a cache line: each worker writes its
// own all the time.
struct alignas(64) WorkerBuffers {
    std::vector<std::vector<void *>> sent;      // pointers for other workers, by worker
    std::vector<std::vector<void *>> sending;   // the same, for the next round
    std::vector<Header *> stack;                // own nodes to scan
};

class WorkerPool {
public:
    explicit WorkerPool(unsigned workers);   // workers >= 2, the caller included
    ~WorkerPool();
    WorkerPool(const WorkerPool &) = delete;
    WorkerPool &operator=(const WorkerPool &) = delete;

    unsigned size() const { return unsigned(threads_.size()) + 1; }
    // Runs job(i) on every worker i, the caller as 0; returns when all have
    // returned. job must not throw.
    void run(const std::function<void(unsigned)> &job);

    std::vector<WorkerBuffers> buffers;            // one per worker

private:
    void loop(unsigned index);

    std::vector<std::thread> threads_;
    std::mutex mutex_;
    std::condition_variable wake_, finished_;
    const std::function<void(unsigned)> *job_ = nullptr;
    uint64_t round_ = 0;     // bumped for each job
    unsigned running_ = 0;   // pool threads still in the current job
    bool stopping_ = false;
};

}  // namespace cb
