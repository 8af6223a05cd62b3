/* FakeLibNVML: a stand-in for NVIDIA's libnvidia-ml.so.1 on machines without a GPU.
 *
 * The real pynvml loads it through LD_LIBRARY_PATH, so every call repro makes crosses the
 * real ctypes boundary: a struct passed by value, a wrong version field or a wrong buffer
 * reaches this C code exactly as it would reach the driver. A Python fake of pynvml cannot
 * see any of that.
 *
 * Node states (FAKE_NVML_STATE; one card, GPU 5, carries the fault so that an index mix-up
 * shows):
 *   healthy-h100-sxm8   8 x H100 SXM on NVSwitch, every reading healthy
 *   row-remap-pending   GPU 5 has a row remap pending
 *   pcie-x8             GPU 5's link trained at x8 of x16
 *   thermal-slowdown    GPU 5 is in hardware and software thermal slowdown
 *   foreign-process     GPU 5 runs pid 31337 (and the caller's own pid, which is not foreign)
 *   fabric-degraded     GPU 5 failed fabric registration and has 7 of 18 NVLinks up
 *   mig                 GPU 0 in MIG mode with instances in slots 0 and 2 (GPU instances
 *                       7 and 9); another job's process runs on its GPU instance 12
 *   not-supported       every query but the inventory answers NVML_ERROR_NOT_SUPPORTED
 *   cgroup-refused      a job's cgroup: only GPUs 2 and 3 give a handle (NO_PERMISSION)
 *   h100-nvl-pair       2 x H100 NVL (PCIe) bridged by 12 NVLinks; slots 12-17 read inactive
 *
 * Readings are deliberately odd (699937 mW, 85520809984 bytes, SM clock 1755 MHz) so a test
 * that finds them in repro's report knows they crossed the boundary and were not defaults.
 * A misuse of the API (an implausible pointer, a wrong struct version, an unknown handle) is
 * answered with the error NVML gives and appended to the file FAKE_NVML_LOG names.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int nvmlReturn_t;
enum {
    SUCCESS = 0,
    ERROR_UNINITIALIZED = 1,
    ERROR_INVALID_ARGUMENT = 2,
    ERROR_NOT_SUPPORTED = 3,
    ERROR_NO_PERMISSION = 4,
    ERROR_NOT_FOUND = 6,
    ERROR_INSUFFICIENT_SIZE = 7,
    ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    ERROR_UNKNOWN = 999,
};

#define MAX_GPUS 8
#define MIG_SLOTS 3
#define NVLINK_SLOTS 18
#define ODD_GPU 5
#define FOREIGN_PID 31337u
#define FI_DEV_NVLINK_LINK_COUNT 91
/* NVML's version word: the struct's size in the low bits, the version in the top byte. */
#define FABRIC_INFO_V2 (0x24u | (2u << 24))
#define FABRIC_INFO_V3 (0x28u | (3u << 24))

struct device {
    int index;              /* NVML index; a MIG instance has its GPU's */
    int mig_slot;           /* -1 for a whole GPU */
    struct device *parent;  /* the GPU of a MIG instance */
};

static struct device gpus[MAX_GPUS];
static struct device migs[MAX_GPUS][MIG_SLOTS];
static const char *state = "";
static int initialised;

static int is(const char *name) { return strcmp(state, name) == 0; }
static int gpu_count(void) { return is("h100-nvl-pair") ? 2 : MAX_GPUS; }
static int odd(const struct device *d) { return d->index == ODD_GPU; }

static void misuse(const char *format, ...) {
    const char *path = getenv("FAKE_NVML_LOG");
    FILE *log = path ? fopen(path, "a") : NULL;
    va_list args;
    va_start(args, format);
    vfprintf(log ? log : stderr, format, args);
    va_end(args);
    fputc('\n', log ? log : stderr);
    if (log) fclose(log);
}

/* Whether `size` bytes at `p` can be read: the kernel copies them into a pipe or says EFAULT.
 * A struct passed by value leaves a stray register where the pointer should be; most such
 * values point nowhere, and the version check catches those that happen to be readable. */
static int readable(const void *p, size_t size) {
    int fds[2];
    if (p == NULL) return 0;
    if (pipe(fds) != 0) return 1;
    ssize_t n = write(fds[1], p, size);
    close(fds[0]);
    close(fds[1]);
    return n == (ssize_t)size;
}

#define OUT(fn, p)                                                          \
    do {                                                                    \
        if (!readable((p), sizeof *(p))) {                                  \
            misuse("%s: output pointer %p is not writable memory", fn, (void *)(p)); \
            return ERROR_INVALID_ARGUMENT;                                  \
        }                                                                   \
    } while (0)

static struct device *device_of(const char *fn, void *handle) {
    for (int i = 0; i < MAX_GPUS; i++) {
        if (handle == &gpus[i]) return &gpus[i];
        for (int s = 0; s < MIG_SLOTS; s++)
            if (handle == &migs[i][s]) return &migs[i][s];
    }
    misuse("%s: %p is not a handle this library gave out", fn, handle);
    return NULL;
}

/* Every device query starts here: the library is initialised and the handle is one of ours. */
#define DEVICE(fn)                                                  \
    if (!initialised) return ERROR_UNINITIALIZED;                   \
    struct device *d = device_of(fn, handle);                       \
    if (d == NULL) return ERROR_INVALID_ARGUMENT;                   \
    (void)d;

/* A health query: refused on every card of the not-supported node and on MIG instances. */
#define HEALTH(fn)                                                   \
    DEVICE(fn)                                                       \
    if (is("not-supported") || d->mig_slot >= 0) return ERROR_NOT_SUPPORTED;

static void copy_text(char *out, unsigned length, const char *text) {
    snprintf(out, length, "%s", text);
}

static void uuid_of(const struct device *d, char *out, unsigned length) {
    if (d->mig_slot >= 0)
        snprintf(out, length, "MIG-%08x-7a1e-5c3d-9b2f-%012x", 0x5a1ce000u + d->mig_slot,
                 0x600dcafeu + d->index);
    else
        snprintf(out, length, "GPU-%08x-4b1d-4e8f-9a0b-1c2d3e4f5a6b", 0x0c0ffee0u + d->index);
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    state = getenv("FAKE_NVML_STATE") ? getenv("FAKE_NVML_STATE") : "healthy-h100-sxm8";
    for (int i = 0; i < MAX_GPUS; i++) {
        gpus[i] = (struct device){i, -1, NULL};
        for (int s = 0; s < MIG_SLOTS; s++) migs[i][s] = (struct device){i, s, &gpus[i]};
    }
    initialised = 1;
    return SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }

nvmlReturn_t nvmlShutdown(void) {
    if (!initialised) return ERROR_UNINITIALIZED;
    initialised = 0;
    return SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
        case ERROR_NOT_SUPPORTED: return "Not Supported";
        case ERROR_NO_PERMISSION: return "Insufficient Permissions";
        case ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument version mismatch";
        default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (!initialised) return ERROR_UNINITIALIZED;
    copy_text(version, length, "570.133.20");
    return SUCCESS;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version) {
    if (!initialised) return ERROR_UNINITIALIZED;
    OUT("nvmlSystemGetCudaDriverVersion", version);
    *version = 12080;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialised) return ERROR_UNINITIALIZED;
    OUT("nvmlDeviceGetCount_v2", count);
    *count = (unsigned)gpu_count();
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, void **handle) {
    if (!initialised) return ERROR_UNINITIALIZED;
    OUT("nvmlDeviceGetHandleByIndex_v2", handle);
    if (index >= (unsigned)gpu_count()) return ERROR_INVALID_ARGUMENT;
    if (is("cgroup-refused") && index != 2 && index != 3) return ERROR_NO_PERMISSION;
    *handle = &gpus[index];
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(void *handle, char *name, unsigned int length) {
    DEVICE("nvmlDeviceGetName");
    if (d->mig_slot >= 0)
        copy_text(name, length, "NVIDIA H100 80GB HBM3 MIG 3g.40gb");
    else
        copy_text(name, length, is("h100-nvl-pair") ? "NVIDIA H100 NVL" : "NVIDIA H100 80GB HBM3");
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(void *handle, char *uuid, unsigned int length) {
    DEVICE("nvmlDeviceGetUUID");
    uuid_of(d, uuid, length);
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(void *handle, int *major, int *minor) {
    DEVICE("nvmlDeviceGetCudaComputeCapability");
    OUT("nvmlDeviceGetCudaComputeCapability", major);
    OUT("nvmlDeviceGetCudaComputeCapability", minor);
    *major = 9;
    *minor = 0;
    return SUCCESS;
}

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;

nvmlReturn_t nvmlDeviceGetMemoryInfo(void *handle, nvmlMemory_t *memory) {
    DEVICE("nvmlDeviceGetMemoryInfo");
    OUT("nvmlDeviceGetMemoryInfo", memory);
    memory->total = 85520809984ull;  /* 81559 MiB */
    memory->used = 611319808ull;
    memory->free = memory->total - memory->used;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEccMode(void *handle, int *current, int *pending) {
    HEALTH("nvmlDeviceGetEccMode");
    OUT("nvmlDeviceGetEccMode", current);
    OUT("nvmlDeviceGetEccMode", pending);
    *current = *pending = 1;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(void *handle, int type, int counter,
                                         unsigned long long *count) {
    HEALTH("nvmlDeviceGetTotalEccErrors");
    OUT("nvmlDeviceGetTotalEccErrors", count);
    (void)type;
    (void)counter;
    *count = 0;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(void *handle, unsigned int *current, unsigned int *pending) {
    HEALTH("nvmlDeviceGetMigMode");
    OUT("nvmlDeviceGetMigMode", current);
    OUT("nvmlDeviceGetMigMode", pending);
    *current = *pending = (is("mig") && d->index == 0) ? 1 : 0;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(void *handle, unsigned int *count) {
    HEALTH("nvmlDeviceGetMaxMigDeviceCount");
    OUT("nvmlDeviceGetMaxMigDeviceCount", count);
    *count = (is("mig") && d->index == 0) ? MIG_SLOTS : 0;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(void *handle, unsigned int slot, void **mig) {
    HEALTH("nvmlDeviceGetMigDeviceHandleByIndex");
    OUT("nvmlDeviceGetMigDeviceHandleByIndex", mig);
    if (!(is("mig") && d->index == 0) || slot >= MIG_SLOTS) return ERROR_INVALID_ARGUMENT;
    if (slot == 1) return ERROR_NOT_FOUND;  /* an empty slot */
    *mig = &migs[d->index][slot];
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuInstanceId(void *handle, unsigned int *id) {
    DEVICE("nvmlDeviceGetGpuInstanceId");
    OUT("nvmlDeviceGetGpuInstanceId", id);
    if (d->mig_slot < 0) return ERROR_INVALID_ARGUMENT;
    *id = 7u + (unsigned)d->mig_slot;  /* slots 0 and 2: GPU instances 7 and 9 */
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPersistenceMode(void *handle, int *mode) {
    HEALTH("nvmlDeviceGetPersistenceMode");
    OUT("nvmlDeviceGetPersistenceMode", mode);
    *mode = 1;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimit(void *handle, unsigned int *milliwatts) {
    HEALTH("nvmlDeviceGetPowerManagementLimit");
    OUT("nvmlDeviceGetPowerManagementLimit", milliwatts);
    *milliwatts = 699937;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerManagementDefaultLimit(void *handle, unsigned int *milliwatts) {
    HEALTH("nvmlDeviceGetPowerManagementDefaultLimit");
    OUT("nvmlDeviceGetPowerManagementDefaultLimit", milliwatts);
    *milliwatts = 699937;
    return SUCCESS;
}

enum { CLOCK_GRAPHICS = 0, CLOCK_SM = 1, CLOCK_MEM = 2 };

static nvmlReturn_t clock_reading(const char *fn, void *handle, int type, unsigned *mhz, int max) {
    HEALTH(fn);
    OUT(fn, mhz);
    if (type == CLOCK_MEM) *mhz = 2619;
    else if (type == CLOCK_SM) *mhz = max ? 1980 : 1755;
    else return ERROR_INVALID_ARGUMENT;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetClockInfo(void *handle, int type, unsigned int *mhz) {
    return clock_reading("nvmlDeviceGetClockInfo", handle, type, mhz, 0);
}

nvmlReturn_t nvmlDeviceGetMaxClockInfo(void *handle, int type, unsigned int *mhz) {
    return clock_reading("nvmlDeviceGetMaxClockInfo", handle, type, mhz, 1);
}

nvmlReturn_t nvmlDeviceGetApplicationsClock(void *handle, int type, unsigned int *mhz) {
    return clock_reading("nvmlDeviceGetApplicationsClock", handle, type, mhz, 0);
}

nvmlReturn_t nvmlDeviceGetDefaultApplicationsClock(void *handle, int type, unsigned int *mhz) {
    return clock_reading("nvmlDeviceGetDefaultApplicationsClock", handle, type, mhz, 0);
}

nvmlReturn_t nvmlDeviceGetCurrPcieLinkGeneration(void *handle, unsigned int *generation) {
    HEALTH("nvmlDeviceGetCurrPcieLinkGeneration");
    OUT("nvmlDeviceGetCurrPcieLinkGeneration", generation);
    *generation = 5;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrPcieLinkWidth(void *handle, unsigned int *width) {
    HEALTH("nvmlDeviceGetCurrPcieLinkWidth");
    OUT("nvmlDeviceGetCurrPcieLinkWidth", width);
    *width = (is("pcie-x8") && odd(d)) ? 8 : 16;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxPcieLinkWidth(void *handle, unsigned int *width) {
    HEALTH("nvmlDeviceGetMaxPcieLinkWidth");
    OUT("nvmlDeviceGetMaxPcieLinkWidth", width);
    *width = 16;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPcieReplayCounter(void *handle, unsigned int *count) {
    HEALTH("nvmlDeviceGetPcieReplayCounter");
    OUT("nvmlDeviceGetPcieReplayCounter", count);
    *count = 0;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(void *handle, unsigned long long *reasons) {
    HEALTH("nvmlDeviceGetCurrentClocksEventReasons");
    OUT("nvmlDeviceGetCurrentClocksEventReasons", reasons);
    /* 0x20 software thermal, 0x40 hardware thermal; 0x1 idle */
    *reasons = (is("thermal-slowdown") && odd(d)) ? 0x60 : 0x1;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetRemappedRows(void *handle, unsigned int *corrected,
                                       unsigned int *uncorrected, unsigned int *pending,
                                       unsigned int *failure) {
    HEALTH("nvmlDeviceGetRemappedRows");
    OUT("nvmlDeviceGetRemappedRows", corrected);
    OUT("nvmlDeviceGetRemappedRows", uncorrected);
    OUT("nvmlDeviceGetRemappedRows", pending);
    OUT("nvmlDeviceGetRemappedRows", failure);
    int hit = is("row-remap-pending") && odd(d);
    *corrected = hit ? 2 : 0;
    *uncorrected = hit ? 1 : 0;
    *pending = hit ? 1 : 0;
    *failure = 0;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(void *handle, int *pending) {
    HEALTH("nvmlDeviceGetRetiredPagesPendingStatus");
    OUT("nvmlDeviceGetRetiredPagesPendingStatus", pending);
    *pending = 0;
    return SUCCESS;
}

/* nvmlProcessInfo_t (v2 layout), as nvmlDeviceGetComputeRunningProcesses_v3 fills it. */
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(void *handle, unsigned int *count,
                                                     nvmlProcessInfo_t *infos) {
    HEALTH("nvmlDeviceGetComputeRunningProcesses_v3");
    OUT("nvmlDeviceGetComputeRunningProcesses_v3", count);
    int foreign = is("foreign-process") && odd(d);
    int other_slice = is("mig") && d->index == 0;  /* another job, on GPU instance 12 */
    unsigned have = foreign ? 2 : other_slice ? 1 : 0;
    if (*count < have || (have && infos == NULL)) {
        *count = have;
        return ERROR_INSUFFICIENT_SIZE;
    }
    if (have && !readable(infos, have * sizeof *infos)) {
        misuse("nvmlDeviceGetComputeRunningProcesses_v3: array %p is not writable", (void *)infos);
        return ERROR_INVALID_ARGUMENT;
    }
    unsigned pids[2] = {(unsigned)getpid(), FOREIGN_PID};
    for (unsigned i = 0; i < have && foreign; i++)
        infos[i] = (nvmlProcessInfo_t){pids[i], 1234567890ull + i, 0xFFFFFFFFu, 0xFFFFFFFFu};
    if (other_slice) infos[0] = (nvmlProcessInfo_t){4711, 2147483648ull, 12, 0};
    *count = have;
    return SUCCESS;
}

/* 18 slots: all up on a healthy card; 7 of 18 up on the degraded one; on the NVL pair 12
 * wired links up and the 6 unwired slots read inactive, as some SKUs report them. */
static int link_count(void) { return is("h100-nvl-pair") ? 12 : NVLINK_SLOTS; }

static int link_up(const struct device *d, unsigned link) {
    static const int degraded[NVLINK_SLOTS] = {1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0};
    if (is("fabric-degraded") && odd(d)) return degraded[link];
    return (int)link < link_count();
}

nvmlReturn_t nvmlDeviceGetNvLinkState(void *handle, unsigned int link, int *active) {
    HEALTH("nvmlDeviceGetNvLinkState");
    OUT("nvmlDeviceGetNvLinkState", active);
    if (link >= NVLINK_SLOTS) return ERROR_INVALID_ARGUMENT;
    *active = link_up(d, link);
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetNvLinkErrorCounter(void *handle, unsigned int link, int counter,
                                             unsigned long long *value) {
    HEALTH("nvmlDeviceGetNvLinkErrorCounter");
    OUT("nvmlDeviceGetNvLinkErrorCounter", value);
    if (link >= NVLINK_SLOTS || counter < 0 || counter > 3) return ERROR_INVALID_ARGUMENT;
    *value = 0;
    return SUCCESS;
}

typedef union {
    double dVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    long long sllVal;
    int siVal;
    unsigned short usVal;
} nvmlValue_t;

typedef struct {
    unsigned int fieldId, scopeId;
    long long timestamp, latencyUsec;
    int valueType;
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;

nvmlReturn_t nvmlDeviceGetFieldValues(void *handle, int count, nvmlFieldValue_t *values) {
    DEVICE("nvmlDeviceGetFieldValues");
    if (count <= 0 || !readable(values, (size_t)count * sizeof *values)) {
        misuse("nvmlDeviceGetFieldValues: %d values at %p are not writable", count, (void *)values);
        return ERROR_INVALID_ARGUMENT;
    }
    for (int i = 0; i < count; i++) {
        nvmlFieldValue_t *v = &values[i];
        v->timestamp = 1700000000000000ll;
        v->latencyUsec = 0;
        if (v->fieldId != FI_DEV_NVLINK_LINK_COUNT || is("not-supported") || d->mig_slot >= 0) {
            v->nvmlReturn = ERROR_NOT_SUPPORTED;
            continue;
        }
        v->valueType = 1;  /* NVML_VALUE_TYPE_UNSIGNED_INT */
        v->nvmlReturn = SUCCESS;
        v->value.uiVal = (unsigned)link_count();
    }
    return SUCCESS;
}

/* Fabric registration: COMPLETED with status SUCCESS on an NVSwitch node; on the degraded
 * card COMPLETED with a failure status; NOT_SUPPORTED (0) on the PCIe pair. */
static void fabric(const struct device *d, unsigned char *cluster, int *status,
                   unsigned *clique, unsigned *fabric_state) {
    for (int i = 0; i < 16; i++) cluster[i] = (unsigned char)(0xA0 + i);
    int failed = is("fabric-degraded") && odd(d);
    *status = failed ? ERROR_UNKNOWN : SUCCESS;
    *clique = 32766;
    *fabric_state = is("h100-nvl-pair") ? 0 : 3;
}

typedef struct {
    unsigned char clusterUuid[16];
    nvmlReturn_t status;
    unsigned int cliqueId;
    unsigned int state;
} nvmlGpuFabricInfo_t;

typedef struct {
    unsigned int version;
    unsigned char clusterUuid[16];
    nvmlReturn_t status;
    unsigned int cliqueId;
    unsigned int state;
    unsigned int healthMask;
    unsigned char healthSummary;  /* v3 only */
} nvmlGpuFabricInfoV_t;

nvmlReturn_t nvmlDeviceGetGpuFabricInfo(void *handle, nvmlGpuFabricInfo_t *info) {
    HEALTH("nvmlDeviceGetGpuFabricInfo");
    OUT("nvmlDeviceGetGpuFabricInfo", info);
    fabric(d, info->clusterUuid, &info->status, &info->cliqueId, &info->state);
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuFabricInfoV(void *handle, nvmlGpuFabricInfoV_t *info) {
    HEALTH("nvmlDeviceGetGpuFabricInfoV");
    if (!readable(info, sizeof(unsigned int))) {
        misuse("nvmlDeviceGetGpuFabricInfoV: %p is not a struct pointer (passed by value?)",
               (void *)info);
        return ERROR_INVALID_ARGUMENT;
    }
    if (info->version != FABRIC_INFO_V2 && info->version != FABRIC_INFO_V3) {
        misuse("nvmlDeviceGetGpuFabricInfoV: version field 0x%08x is neither v2 (0x%08x) nor "
               "v3 (0x%08x)", info->version, FABRIC_INFO_V2, FABRIC_INFO_V3);
        return ERROR_ARGUMENT_VERSION_MISMATCH;
    }
    size_t size = info->version & 0xFFFFFFu;
    if (!readable(info, size)) {
        misuse("nvmlDeviceGetGpuFabricInfoV: %zu bytes at %p are not writable", size, (void *)info);
        return ERROR_INVALID_ARGUMENT;
    }
    fabric(d, info->clusterUuid, &info->status, &info->cliqueId, &info->state);
    info->healthMask = 0;
    if (info->version == FABRIC_INFO_V3) info->healthSummary = info->status == SUCCESS ? 1 : 2;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetVbiosVersion(void *handle, char *version, unsigned int length) {
    HEALTH("nvmlDeviceGetVbiosVersion");
    copy_text(version, length, "96.00.99.00.1F");
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetInforomImageVersion(void *handle, char *version, unsigned int length) {
    HEALTH("nvmlDeviceGetInforomImageVersion");
    copy_text(version, length, "G520.0200.00.05");
    return SUCCESS;
}
