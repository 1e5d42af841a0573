/* Which symbols libddad_rt exports: the C API (ddad_rt.h) and the C++ API (engine.h and
 * friends), nothing else. The library is built with hidden visibility and a linker version
 * script (cpp/ddad_rt.map); DDAD_RT_API marks what is public. Valid C and C++. */
#ifndef DDAD_RT_EXPORT_H_
#define DDAD_RT_EXPORT_H_

#if defined(_WIN32)
#if defined(DDAD_RT_BUILDING_LIBRARY)
#define DDAD_RT_API __declspec(dllexport)
#else
#define DDAD_RT_API __declspec(dllimport)
#endif
#else
#define DDAD_RT_API __attribute__((visibility("default")))
#endif

#endif /* DDAD_RT_EXPORT_H_ */
