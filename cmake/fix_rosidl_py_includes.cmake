# Fix-up for building ROS 2 interfaces against the PyPI `ros-*` wheels (no apt ROS).
#
# Not part of the package: pass it only where it is needed, e.g.
#   cmake -DCMAKE_PROJECT_INCLUDE=<repo>/cmake/fix_rosidl_py_includes.cmake ...
#   colcon build --cmake-args -DCMAKE_PROJECT_INCLUDE=<repo>/cmake/fix_rosidl_py_includes.cmake
# CMake includes it right after the project() call, so the package's CMakeLists.txt stays a
# normal one for real ROS installs.
#
# The problem: the wheels' exported `<pkg>::<pkg>__rosidl_generator_py` imported targets carry
# INTERFACE_INCLUDE_DIRECTORIES of the machine that built the wheels
# (/opt/python/cp311-cp311/include/python3.11 and its numpy include dir). Those paths do not exist
# here, so generating our Python bindings fails with "Imported target ... includes non-existent
# path". The fix: once the whole CMakeLists.txt has been read (after every find_package), reset the
# include dirs of every such imported target whose dirs do not exist to this machine's Python and
# NumPy include dirs. Targets whose include dirs exist (a real ROS install) are left alone.
#
# Needs CMake >= 3.21 (cmake_language(DEFER), IMPORTED_TARGETS directory property).

if(CMAKE_VERSION VERSION_LESS "3.21")
  message(WARNING "fix_rosidl_py_includes.cmake needs CMake >= 3.21; not applied")
  return()
endif()

function(_vita_grasp_fix_rosidl_py_includes)
  get_directory_property(_imported DIRECTORY "${CMAKE_SOURCE_DIR}" IMPORTED_TARGETS)
  set(_to_fix "")
  foreach(_tgt IN LISTS _imported)
    if(NOT _tgt MATCHES "__rosidl_generator_py$")
      continue()
    endif()
    get_target_property(_dirs ${_tgt} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    foreach(_d IN LISTS _dirs)
      if(NOT _d MATCHES "^\\$<" AND NOT IS_DIRECTORY "${_d}")
        list(APPEND _to_fix ${_tgt})
        break()
      endif()
    endforeach()
  endforeach()
  if(NOT _to_fix)
    return()
  endif()

  if(NOT Python3_INCLUDE_DIRS OR NOT Python3_NumPy_INCLUDE_DIRS)
    find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
  endif()
  set(_new "${Python3_INCLUDE_DIRS};${Python3_NumPy_INCLUDE_DIRS}")
  list(LENGTH _to_fix _n)
  message(STATUS "fix_rosidl_py_includes: resetting include dirs of ${_n} imported "
                 "*__rosidl_generator_py target(s) to ${_new}")
  foreach(_tgt IN LISTS _to_fix)
    set_target_properties(${_tgt} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_new}")
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _vita_grasp_fix_rosidl_py_includes)
