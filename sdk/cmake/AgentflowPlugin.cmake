# Helpers for plugin builds (installed with the SDK, also used in-tree).

# agentflow_add_plugin(NAME SOURCES...): a loadable module NAME.so that sees only the SDK, exports
# only af_plugin_entry (hidden visibility), and is linked with no undefined symbols left.
function(agentflow_add_plugin name)
    add_library(${name} MODULE ${ARGN})
    if(TARGET AgentflowSDK::sdk)
        target_link_libraries(${name} PRIVATE AgentflowSDK::sdk)
    endif()
    set_target_properties(${name} PROPERTIES PREFIX "" C_VISIBILITY_PRESET hidden
                          C_STANDARD 11)
    target_link_options(${name} PRIVATE -Wl,-z,defs)
endfunction()

# agentflow_add_lua_plugin(NAME FILE): copies a Lua plugin into the build directory.
function(agentflow_add_lua_plugin name file)
    get_filename_component(base ${file} NAME)
    add_custom_target(${name} ALL
        COMMAND ${CMAKE_COMMAND} -E copy_if_different ${CMAKE_CURRENT_SOURCE_DIR}/${file}
                ${CMAKE_CURRENT_BINARY_DIR}/${base}
        DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${file})
endfunction()
