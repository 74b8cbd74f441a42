#include "worker_pool.hpp"

namespace cb {

WorkerPool::WorkerPool(unsigned workers) : buffers(workers) {
    for (unsigned i = 1; i < workers; ++i) threads_.emplace_back([this, i] { loop(i); });
}

WorkerPool::~WorkerPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    for (auto &t : threads_) t.join();
}

void WorkerPool::run(const std::function<void(unsigned)> &job) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        job_ = &job;
        running_ = unsigned(threads_.size());
        ++round_;
    }
    wake_.notify_all();
    job(0);
    std::unique_lock<std::mutex> lock(mutex_);
    finished_.wait(lock, [this] { return running_ == 0; });
    job_ = nullptr;
}

void WorkerPool::loop(unsigned index) {
    uint64_t seen = 0;
    for (;;) {
        const std::function<void(unsigned)> *job;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || round_ != seen; });
            if (stopping_) return;
            seen = round_;
            job = job_;
        }
        (*job)(index);
        std::lock_guard<std::mutex> lock(mutex_);
        if (--running_ == 0) finished_.notify_one();
    }
}

}  // namespace cb
